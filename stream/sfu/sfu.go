// Package sfu is the hub's live-stream fan-out (hub side): boxes publish over WHIP
// (RFC 9725), emergency doctors' browsers watch over WHEP (draft-ietf-wish-whep), and
// a small selective forwarding unit in between sends each box's one uplink to every
// viewer.
//
// The SFU is an ICE-lite server on one UDP port for every session, with ICE over TCP
// on the same host for hospital networks that block UDP. Per box track it keeps a
// packet cache: viewers' NACKs are answered from it (a lossy viewer never makes the
// box retransmit), and a viewer who joins mid-GOP is started from the last keyframe,
// so a picture shows at once even when the camera sends one keyframe in 4 s.
// Keyframe requests reach the box at most once per KeyframeInterval. Every viewer has
// its own bounded queue: one that does not keep up loses packets, nobody else does.
//
// A box keeps its session across an outage shorter than SessionTimeout by
// restarting ICE with a PATCH. When it publishes anew instead (the hub forgot it, or
// it rebooted), the new session replaces the old one and the viewers follow it on
// their existing connections, as long as it comes within ReconnectGrace.
//
// Data channels are relayed by label, byte for byte: what a box sends on "vitals" or
// "vitals-wave" reaches every viewer that opened a channel of that label (viewers open
// them: "vitals" ordered and reliable, "vitals-wave" unordered with maxRetransmits 0,
// "control" reliable). A viewer's "control" messages go to Config.OnViewerControl,
// which decides whether the crew gets them (SendToPublisher).
//
// What clients can rely on: the answer keeps one codec per media section (H.264
// constrained baseline first, then the other profiles browsers decode; Opus, PCMU,
// PCMA); a PATCH needs If-Match with the session's ETag, or * to restart ICE, and
// gets 404 once the hub has forgotten the session, which tells the client to POST
// again. A box that also offers an audio section to receive (recvonly) gets the
// voice of the one viewer the hub lets talk (Talkback): push-to-talk for the crew.
//
// Policy stays with the caller: Config.AuthorizePublisher and AuthorizeViewer decide
// who may publish and watch, OnEvent receives what to audit, Revoke ends a box's
// session at once.
package sfu

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// SFU is the hub's WHIP ingest and WHEP fan-out. Mount WHIP() and WHEP() on the
// hub's public server and run Service() under its supervisor.
type SFU struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	t       *transport              // nil until the service runs
	feeds   map[string]*feed        // by device ID
	pubs    map[string]*publication // live WHIP sessions by resource ID
	viewers map[string]*viewer      // live WHEP sessions by resource ID

	nacksServed, plisForwarded atomic.Uint64
}

// New checks cfg and returns an SFU that answers 503 until its service runs.
func New(cfg Config) (*SFU, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &SFU{
		cfg: cfg, log: cfg.Log, metrics: m,
		feeds: map[string]*feed{}, pubs: map[string]*publication{}, viewers: map[string]*viewer{},
	}, nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *SFU) event(kind EventKind, device, session, viewer, remote, reason string) {
	s.log.Info("sfu: "+string(kind), "device", device, "session", session, "viewer", viewer, "remote", remote, "reason", reason)
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(Event{Kind: kind, Time: time.Now(), Device: device, Session: session, Viewer: viewer, Remote: remote, Reason: reason})
	}
}

// addPublication makes pub the live session of its box, replacing the box's
// previous session (its viewers follow). It fails when the hub is at MaxSessions.
func (s *SFU) addPublication(pub *publication) error {
	s.mu.Lock()
	f := s.feeds[pub.device]
	replacing := false
	if f != nil {
		f.mu.Lock()
		replacing = f.pub != nil
		f.mu.Unlock()
	}
	if !replacing && len(s.pubs) >= s.cfg.MaxSessions {
		s.mu.Unlock()
		return &httpError{code: 503, msg: fmt.Sprintf("the hub already carries %d live sessions, its limit", s.cfg.MaxSessions)}
	}
	if f == nil {
		f = &feed{sfu: s, device: pub.device, viewers: map[*viewer]struct{}{}}
		s.feeds[pub.device] = f
	}
	pub.feed = f
	for _, src := range pub.sources {
		src.keyframes = f.requestKeyframe
	}
	s.pubs[pub.id] = pub
	old, lost := f.replace(pub)
	if old != nil {
		delete(s.pubs, old.id)
	}
	s.metrics.sessions.Set(float64(len(s.pubs)))
	s.mu.Unlock()
	s.startPublication(pub)
	s.event(SessionStarted, pub.device, pub.id, "", pub.remote, "")
	if old != nil {
		old.ended.Store(true)
		old.pc.Close()
		s.event(SessionEnded, old.device, old.id, "", old.remote, "replaced by the box's new session")
	}
	for _, v := range lost {
		s.endViewer(v, "the box's new session sends another format")
	}
	return nil
}

// endPublication ends a box's session. Unless the session was already replaced,
// its views end too, or, when the box may come back (lost is true: the connection
// failed or closed without a DELETE), they wait for it for ReconnectGrace.
func (s *SFU) endPublication(pub *publication, reason string, lost bool) {
	if pub.ended.Swap(true) {
		return
	}
	s.mu.Lock()
	delete(s.pubs, pub.id)
	f := pub.feed
	var viewers []*viewer
	f.mu.Lock()
	if f.pub == pub {
		f.pub = nil
		if lost && len(f.viewers) > 0 {
			f.waitForBox(s.cfg.ReconnectGrace)
		} else {
			viewers = f.viewerListLocked()
			delete(s.feeds, pub.device)
		}
	}
	f.mu.Unlock()
	s.metrics.sessions.Set(float64(len(s.pubs)))
	s.mu.Unlock()
	pub.pc.Close()
	s.event(SessionEnded, pub.device, pub.id, "", pub.remote, reason)
	for _, v := range viewers {
		s.endViewer(v, "the box's session ended: "+reason)
	}
}

// expireFeed ends the views of a box that is gone for good: it did not come back
// within ReconnectGrace, or was revoked meanwhile.
func (s *SFU) expireFeed(f *feed, reason string) {
	s.mu.Lock()
	f.mu.Lock()
	if f.pub != nil || s.feeds[f.device] != f {
		f.mu.Unlock()
		s.mu.Unlock()
		return
	}
	viewers := f.viewerListLocked()
	delete(s.feeds, f.device)
	f.mu.Unlock()
	s.mu.Unlock()
	for _, v := range viewers {
		s.endViewer(v, reason)
	}
}

// endViewer ends one view.
func (s *SFU) endViewer(v *viewer, reason string) {
	if v.ended.Swap(true) {
		return
	}
	s.mu.Lock()
	delete(s.viewers, v.id)
	v.feed.mu.Lock()
	delete(v.feed.viewers, v)
	v.feed.mu.Unlock()
	s.metrics.viewers.Set(float64(len(s.viewers)))
	s.mu.Unlock()
	for _, vt := range v.tracks {
		if src := vt.currentSource(); src != nil {
			src.detach(vt)
		}
		vt.detach()
	}
	close(v.done)
	v.pc.Close()
	s.stopTalkingIfSpeaker(v)
	s.event(ViewerLeft, v.device, v.id, v.who, v.remote, reason)
}

// Revoke ends the live session of device at once, and every view of it, e.g. when
// the box's enrolment is revoked. It reports whether there was one.
func (s *SFU) Revoke(device string) bool {
	s.mu.Lock()
	f := s.feeds[device]
	s.mu.Unlock()
	if f == nil {
		return false
	}
	f.mu.Lock()
	pub := f.pub
	f.mu.Unlock()
	if pub == nil {
		// Viewers waiting for the box to come back: it will not.
		f.mu.Lock()
		f.stopWaiting()
		f.mu.Unlock()
		s.expireFeed(f, "device revoked while its viewers waited for it")
		return false
	}
	s.endPublication(pub, "device revoked", false)
	return true
}

// shutdown ends every session, then closes the media sockets.
func (s *SFU) shutdown() {
	s.mu.Lock()
	pubs := make([]*publication, 0, len(s.pubs))
	for _, p := range s.pubs {
		pubs = append(pubs, p)
	}
	viewers := make([]*viewer, 0, len(s.viewers))
	for _, v := range s.viewers {
		viewers = append(viewers, v)
	}
	t := s.t
	s.t = nil
	s.mu.Unlock()
	// Every session ends at once and in parallel: closing a peer connection waits for
	// its DTLS and SCTP goodbyes, and a peer that no longer answers must not hold the
	// hub's shutdown past the supervisor's grace.
	var wg sync.WaitGroup
	for _, v := range viewers {
		wg.Go(func() { s.endViewer(v, "hub shutting down") })
	}
	for _, p := range pubs {
		wg.Go(func() { s.endPublication(p, "hub shutting down", false) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		if t != nil {
			t.close()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownWait):
		s.log.Warn("sfu: sessions still closing at shutdown; leaving them to the process exit", "viewers", len(viewers), "sessions", len(pubs))
	}
}

// shutdownWait bounds how long shutdown waits for sessions to close.
const shutdownWait = 3 * time.Second

// transport returns the running transport, or nil.
func (s *SFU) transport() *transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t
}

// kindsOf lists a publication's media kinds, for logs.
func kindsOf(m map[webrtc.RTPCodecType]*source) []string {
	var out []string
	for k, src := range m {
		out = append(out, k.String()+" "+src.codec.MimeType)
	}
	return out
}
