package sfu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/pion/webrtc/v4"
)

// Media types of the WHIP and WHEP exchanges.
const (
	sdpType      = "application/sdp"
	fragmentType = "application/trickle-ice-sdpfrag"
)

// negotiationTimeout bounds answering one offer or ICE restart.
const negotiationTimeout = 10 * time.Second

// httpError is an error with the status to answer and a message for the client.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

// fail answers err: its own status for an httpError, 500 otherwise. Client errors
// are logged at info, the hub's own at error.
func (s *SFU) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := http.StatusInternalServerError, "internal error: "+err.Error()
	var he *httpError
	if errors.As(err, &he) {
		code, msg = he.code, he.msg
	}
	if code >= 500 && code != http.StatusServiceUnavailable {
		s.log.Error("sfu: request failed", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", code, "err", msg)
	} else {
		s.log.Info("sfu: request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", code, "err", msg)
	}
	s.metrics.rejected.WithLabelValues(fmt.Sprint(code)).Inc()
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5") // a limit or a restart: worth trying again soon
	}
	http.Error(w, msg, code)
}

// WHIP is the handler for boxes: POST at WHIPPath, PATCH and DELETE at
// WHIPPath/{id}. Mount it at both WHIPPath and WHIPPath+"/".
func (s *SFU) WHIP() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+s.cfg.WHIPPath, s.whipPost)
	mux.HandleFunc("OPTIONS "+s.cfg.WHIPPath, s.options)
	mux.HandleFunc("PATCH "+s.cfg.WHIPPath+"/{id}", s.whipPatch)
	mux.HandleFunc("DELETE "+s.cfg.WHIPPath+"/{id}", s.whipDelete)
	return mux
}

// WHEP is the handler for viewers: POST at WHEPPath/{device}, PATCH and DELETE at
// WHEPPath/{device}/{id}. Mount it at WHEPPath+"/".
func (s *SFU) WHEP() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+s.cfg.WHEPPath+"/{device}", s.whepPost)
	mux.HandleFunc("OPTIONS "+s.cfg.WHEPPath+"/{device}", s.options)
	mux.HandleFunc("PATCH "+s.cfg.WHEPPath+"/{device}/{id}", s.whepPatch)
	mux.HandleFunc("DELETE "+s.cfg.WHEPPath+"/{device}/{id}", s.whepDelete)
	return mux
}

func (s *SFU) options(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Accept-Post", sdpType)
	w.Header().Set("Allow", "OPTIONS, POST")
	w.WriteHeader(http.StatusNoContent)
}

// readBody checks the content type and reads the body, bounded by MaxBody.
func (s *SFU) readBody(w http.ResponseWriter, r *http.Request, want string) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != want {
		return nil, &httpError{code: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("content type must be %s, got %q", want, r.Header.Get("Content-Type"))}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body is larger than %d bytes", s.cfg.MaxBody)}
	case err != nil:
		return nil, &httpError{code: http.StatusBadRequest, msg: "reading body: " + err.Error()}
	case len(body) == 0:
		return nil, &httpError{code: http.StatusBadRequest, msg: "empty body"}
	}
	return body, nil
}

func (s *SFU) whipPost(w http.ResponseWriter, r *http.Request) {
	device, err := s.cfg.AuthorizePublisher(r)
	if err != nil {
		s.fail(w, r, &httpError{code: http.StatusForbidden, msg: "not allowed to publish: " + err.Error()})
		return
	}
	offer, err := s.readBody(w, r, sdpType)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	t := s.transport()
	if t == nil {
		s.fail(w, r, &httpError{code: http.StatusServiceUnavailable, msg: "the live stream service is not running"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), negotiationTimeout)
	defer cancel()
	pub, err := s.negotiatePublication(ctx, t.publisher, offer)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pub.id, pub.device, pub.remote, pub.started = newID(), device, r.RemoteAddr, time.Now()
	pub.ice, pub.channels = iceResource{etag: newETag()}, map[string]*webrtc.DataChannel{}
	if err := s.addPublication(pub); err != nil {
		pub.pc.Close()
		s.fail(w, r, err)
		return
	}
	s.log.Info("sfu: box publishing", "device", device, "session", pub.id, "tracks", kindsOf(pub.sources), "talkback", pub.talkback != nil)
	s.created(w, s.cfg.WHIPPath+"/"+pub.id, pub.ice.currentETag(), pub.pc.LocalDescription().SDP)
}

// created answers 201 with the session's location, entity tag and SDP answer.
func (s *SFU) created(w http.ResponseWriter, location, etag, answer string) {
	w.Header().Set("Location", location)
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", sdpType)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// publication finds the box's own session; another box's session is as unknown
// as a missing one.
func (s *SFU) publication(r *http.Request) (*publication, error) {
	device, err := s.cfg.AuthorizePublisher(r)
	if err != nil {
		return nil, &httpError{code: http.StatusForbidden, msg: "not allowed to publish: " + err.Error()}
	}
	s.mu.Lock()
	pub := s.pubs[r.PathValue("id")]
	s.mu.Unlock()
	if pub == nil || pub.device != device {
		return nil, &httpError{code: http.StatusNotFound, msg: "no such WHIP session: publish again with a POST"}
	}
	return pub, nil
}

func (s *SFU) whipPatch(w http.ResponseWriter, r *http.Request) {
	pub, err := s.publication(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.patch(w, r, &pub.ice, pub.pc)
}

func (s *SFU) whipDelete(w http.ResponseWriter, r *http.Request) {
	pub, err := s.publication(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.endPublication(pub, "the box ended it", false)
	w.WriteHeader(http.StatusOK)
}

// patch handles a trickle or ICE restart PATCH on either kind of session.
func (s *SFU) patch(w http.ResponseWriter, r *http.Request, ice *iceResource, pc *webrtc.PeerConnection) {
	body, err := s.readBody(w, r, fragmentType)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	frag, err := ParseFragment(body)
	if err != nil {
		s.fail(w, r, &httpError{code: http.StatusBadRequest, msg: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), negotiationTimeout)
	defer cancel()
	answer, etag, err := ice.patch(ctx, pc, r.Header.Get("If-Match"), frag)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if answer == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.metrics.iceRestarts.Inc()
	s.log.Info("sfu: ICE restart", "path", r.URL.Path, "remote", r.RemoteAddr)
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", fragmentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(answer)
}

func (s *SFU) whepPost(w http.ResponseWriter, r *http.Request) {
	device := r.PathValue("device")
	who, err := s.cfg.AuthorizeViewer(r, device)
	if err != nil {
		s.fail(w, r, &httpError{code: http.StatusForbidden, msg: "not allowed to watch " + device + ": " + err.Error()})
		return
	}
	offer, err := s.readBody(w, r, sdpType)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	t := s.transport()
	if t == nil {
		s.fail(w, r, &httpError{code: http.StatusServiceUnavailable, msg: "the live stream service is not running"})
		return
	}
	v, pub, err := s.reserveViewer(device, who, r.RemoteAddr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), negotiationTimeout)
	defer cancel()
	if err := s.admitViewer(v, s.negotiateViewer(ctx, t.viewer, v, pub, offer)); err != nil {
		s.fail(w, r, err)
		return
	}
	s.startViewer(v)
	s.event(ViewerJoined, device, v.id, who, v.remote, "")
	s.created(w, s.cfg.WHEPPath+"/"+device+"/"+v.id, v.ice.currentETag(), v.pc.LocalDescription().SDP)
}

// reserveViewer counts a new viewer against the limits before the costly
// negotiation, so that a flood of offers cannot exceed them.
func (s *SFU) reserveViewer(device, who, remote string) (*viewer, *publication, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.feeds[device]
	if f == nil {
		return nil, nil, &httpError{code: http.StatusNotFound, msg: "device " + device + " is not publishing"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pub == nil {
		return nil, nil, &httpError{code: http.StatusNotFound, msg: "device " + device + " is not publishing"}
	}
	if len(f.viewers)+f.pending >= s.cfg.MaxViewers {
		return nil, nil, &httpError{code: http.StatusServiceUnavailable, msg: fmt.Sprintf("device %s already has %d viewers, the limit", device, s.cfg.MaxViewers)}
	}
	f.pending++
	v := &viewer{
		id: newID(), device: device, who: who, remote: remote, joined: time.Now(), feed: f,
		ice: iceResource{etag: newETag()}, queue: make(chan queued, s.cfg.ViewerQueue), burstReady: make(chan struct{}, 1),
		done: make(chan struct{}), channels: map[string]*webrtc.DataChannel{},
	}
	return v, f.pub, nil
}

// admitViewer turns a reservation into a live viewer, or gives it up when
// negotiation failed (err != nil) or the box left meanwhile.
func (s *SFU) admitViewer(v *viewer, err error) error {
	s.mu.Lock()
	f := v.feed
	f.mu.Lock()
	f.pending--
	if err == nil && f.pub == nil {
		err = &httpError{code: http.StatusNotFound, msg: "device " + v.device + " stopped publishing"}
	}
	if err == nil {
		f.viewers[v] = struct{}{}
		s.viewers[v.id] = v
		s.metrics.viewers.Set(float64(len(s.viewers)))
	}
	f.mu.Unlock()
	s.mu.Unlock()
	if err != nil && v.pc != nil {
		v.pc.Close()
	}
	return err
}

// viewerSession finds a WHEP session: its unguessable URL is the viewer's
// capability, so a viewer token that expired meanwhile still lets it hang up.
func (s *SFU) viewerSession(r *http.Request) (*viewer, error) {
	s.mu.Lock()
	v := s.viewers[r.PathValue("id")]
	s.mu.Unlock()
	if v == nil || v.device != r.PathValue("device") {
		return nil, &httpError{code: http.StatusNotFound, msg: "no such WHEP session"}
	}
	return v, nil
}

func (s *SFU) whepPatch(w http.ResponseWriter, r *http.Request) {
	v, err := s.viewerSession(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.patch(w, r, &v.ice, v.pc)
}

func (s *SFU) whepDelete(w http.ResponseWriter, r *http.Request) {
	v, err := s.viewerSession(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.endViewer(v, "the viewer ended it")
	w.WriteHeader(http.StatusOK)
}
