package sfu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// iceResource is the ICE side of a WHIP or WHEP session resource: its entity tag,
// which changes with every ICE restart (RFC 9725 §4.3), and the lock that keeps
// two PATCHes from renegotiating at once.
type iceResource struct {
	mu   sync.Mutex
	etag string
	// last is the ICE restart applied most recently. A client whose PATCH was applied
	// but whose answer was lost on a failing link sends the same PATCH again with the
	// entity tag it still holds; it gets the same answer instead of a 412 that would
	// cost it the session.
	last appliedRestart
}

// appliedRestart is one applied ICE restart: what was asked and what was answered.
type appliedRestart struct {
	ifMatch, ufrag, pwd string
	answer              []byte
	etag                string
}

func newETag() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return `"` + hex.EncodeToString(b[:]) + `"`
}

// currentETag returns the resource's entity tag.
func (r *iceResource) currentETag() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.etag
}

// patch applies a trickle-ice-sdpfrag to pc. New credentials restart ICE: the
// answer's fragment (new credentials, the hub's candidates) is returned with a new
// entity tag. Otherwise the candidates are added and nil is returned (204).
func (r *iceResource) patch(ctx context.Context, pc *webrtc.PeerConnection, ifMatch string, frag *Fragment) ([]byte, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case ifMatch == "":
		return nil, "", &httpError{code: http.StatusPreconditionRequired, msg: "a PATCH needs If-Match: the session's ETag, or * for an ICE restart"}
	case r.last.etag != "" && r.last.etag == r.etag && ifMatch == r.last.ifMatch && frag.Ufrag == r.last.ufrag && frag.Pwd == r.last.pwd:
		return r.last.answer, r.last.etag, nil
	case ifMatch != "*" && ifMatch != r.etag:
		return nil, "", &httpError{code: http.StatusPreconditionFailed, msg: "If-Match does not name this session's current ICE session (ETag " + r.etag + ")"}
	}
	remote := pc.RemoteDescription()
	if remote == nil {
		return nil, "", &httpError{code: http.StatusConflict, msg: "the session has no offer yet"}
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal([]byte(remote.SDP)); err != nil {
		return nil, "", fmt.Errorf("parse current offer: %w", err)
	}
	if frag.Ufrag != "" && frag.Ufrag != iceUfrag(&sd) {
		answer, etag, err := r.restart(ctx, pc, &sd, frag)
		if err == nil {
			r.last = appliedRestart{ifMatch: ifMatch, ufrag: frag.Ufrag, pwd: frag.Pwd, answer: answer, etag: etag}
		}
		return answer, etag, err
	}
	for _, c := range frag.Candidates {
		init := webrtc.ICECandidateInit{Candidate: c.Value}
		if c.Mid != "" {
			init.SDPMid = &c.Mid
		} else {
			idx := uint16(max(c.MLineIndex, 0))
			init.SDPMLineIndex = &idx
		}
		if err := pc.AddICECandidate(init); err != nil {
			return nil, "", &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf("candidate %.60q: %v", c.Value, err)}
		}
	}
	return nil, "", nil
}

// restart renegotiates with the client's new credentials and candidates, as an
// offer identical to the last but for them.
func (r *iceResource) restart(ctx context.Context, pc *webrtc.PeerConnection, sd *sdp.SessionDescription, frag *Fragment) ([]byte, string, error) {
	sd.Origin.SessionVersion++
	sd.Attributes = withCredentials(sd.Attributes, frag, nil)
	for i, m := range sd.MediaDescriptions {
		mid, _ := m.Attribute("mid")
		var cands []string
		for _, c := range frag.Candidates {
			if c.Mid == mid || (c.Mid == "" && (c.MLineIndex == i || (c.MLineIndex < 0 && i == 0))) {
				cands = append(cands, strings.TrimPrefix(c.Value, "candidate:"))
			}
		}
		m.Attributes = withCredentials(m.Attributes, frag, cands)
	}
	offer, err := sd.Marshal()
	if err != nil {
		return nil, "", fmt.Errorf("write restart offer: %w", err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return nil, "", &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf("ICE restart refused: %v", err)}
	}
	if err := answer(ctx, pc); err != nil {
		return nil, "", fmt.Errorf("ICE restart: %w", err)
	}
	local, err := localFragment(pc)
	if err != nil {
		return nil, "", err
	}
	r.etag = newETag()
	return local.Marshal(), r.etag, nil
}

// withCredentials replaces the ICE credentials and candidates among attrs.
func withCredentials(attrs []sdp.Attribute, frag *Fragment, cands []string) []sdp.Attribute {
	out := make([]sdp.Attribute, 0, len(attrs)+len(cands))
	for _, a := range attrs {
		switch a.Key {
		case "ice-ufrag":
			a.Value = frag.Ufrag
		case "ice-pwd":
			a.Value = frag.Pwd
		case "candidate", "end-of-candidates":
			continue
		}
		out = append(out, a)
	}
	for _, c := range cands {
		out = append(out, sdp.NewAttribute("candidate", c))
	}
	return out
}

// iceUfrag is the ICE username fragment of a description: at media level in the
// first section, or at session level.
func iceUfrag(sd *sdp.SessionDescription) string {
	for _, m := range sd.MediaDescriptions {
		if u, ok := m.Attribute("ice-ufrag"); ok {
			return u
		}
	}
	u, _ := sd.Attribute("ice-ufrag")
	return u
}

// localFragment is the hub's side of an ICE restart answer, as a fragment.
func localFragment(pc *webrtc.PeerConnection) (*Fragment, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal([]byte(pc.LocalDescription().SDP)); err != nil {
		return nil, fmt.Errorf("parse own answer: %w", err)
	}
	f := &Fragment{Ufrag: iceUfrag(&sd), EndOfCandidates: true}
	for _, m := range sd.MediaDescriptions {
		if f.Pwd == "" {
			f.Pwd, _ = m.Attribute("ice-pwd")
		}
		mid, _ := m.Attribute("mid")
		for _, a := range m.Attributes {
			if a.Key == "candidate" {
				f.Candidates = append(f.Candidates, FragmentCandidate{Mid: mid, Value: "candidate:" + a.Value})
			}
		}
		if len(f.Candidates) > 0 {
			break // bundled: one transport, one set of candidates
		}
	}
	if f.Pwd == "" {
		f.Pwd, _ = sd.Attribute("ice-pwd")
	}
	return f, nil
}
