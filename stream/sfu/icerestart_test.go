package sfu

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"lifeline/internal/wait"
)

// TestICERestartKeepsTheSession restarts ICE as a box does after a tunnel (RFC 9725
// §4.3): a PATCH with new credentials and If-Match: *. The hub answers with its own
// new credentials and a new ETag, the session and its ID survive, and media flows
// again afterwards; a PATCH with the old ETag is then refused.
func TestICERestartKeepsTheSession(t *testing.T) {
	aus := h264Clip(t, 2, 30, 30)
	h := startHub(t, Config{})
	box := publishBox(t, h, "box-tunnel")
	wait.For(t, 10*time.Second, "the box's connection", func() bool {
		return box.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	box.play(aus, 30)
	packets := func() uint64 {
		st := h.sfu.Status()
		if len(st.Sessions) != 1 {
			return 0
		}
		return st.Sessions[0].Tracks[0].Packets
	}
	wait.For(t, 5*time.Second, "video at the hub", func() bool { return packets() > 20 })

	// A trickled candidate with the current ETag is accepted without a body.
	local, err := localFragment(box.pc)
	if err != nil {
		t.Fatal(err)
	}
	trickle := &Fragment{Candidates: local.Candidates[:1]}
	code, _, body := h.do(t, http.MethodPatch, box.location, fragmentType, string(trickle.Marshal()),
		map[string]string{"X-Device": box.device, "If-Match": box.etag})
	if code != http.StatusNoContent {
		t.Fatalf("trickle PATCH: %d %s", code, body)
	}

	states := watchICE(box.pc)
	restartICE(t, h, box)

	before := packets()
	wait.For(t, 10*time.Second, "video at the hub after the restart", func() bool { return packets() > before+30 })
	if got := states(); !strings.Contains(got, "checking connected") {
		t.Errorf("box's ICE went %q after the restart, want it checking again and connected", got)
	}
	st := h.sfu.Status()
	if len(st.Sessions) != 1 || "/whip/"+st.Sessions[0].Session != box.location {
		t.Errorf("session after restart: %+v, want the same %s", st.Sessions, box.location)
	}
	if code, _, _ := h.do(t, http.MethodPatch, box.location, fragmentType, string(trickle.Marshal()),
		map[string]string{"X-Device": box.device, "If-Match": box.etag}); code != http.StatusPreconditionFailed {
		t.Errorf("PATCH with the ETag from before the restart: %d, want 412", code)
	}
}

// watchICE records a peer's ICE states from now on.
func watchICE(pc *webrtc.PeerConnection) func() string {
	var mu sync.Mutex
	var states []string
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		mu.Lock()
		states = append(states, s.String())
		mu.Unlock()
	})
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(states, " ")
	}
}

// restartICE restarts the box's ICE through the hub as RFC 9725 §4.3.2 has it: a
// PATCH with the box's new credentials and candidates and If-Match: *, answered 200
// with the hub's new ones and a new ETag, which the box applies as a new answer.
func restartICE(t *testing.T, h *hub, box *testBox) {
	t.Helper()
	completeOffer(t, box.pc, &webrtc.OfferOptions{ICERestart: true})
	mine, err := localFragment(box.pc)
	if err != nil {
		t.Fatal(err)
	}
	code, hdr, body := h.do(t, http.MethodPatch, box.location, fragmentType, string(mine.Marshal()),
		map[string]string{"X-Device": box.device, "If-Match": "*"})
	if code != http.StatusOK || hdr.Get("Content-Type") != fragmentType {
		t.Fatalf("restart PATCH: %d %s", code, body)
	}
	if etag := hdr.Get("ETag"); etag == "" || etag == box.etag {
		t.Errorf("restart kept ETag %q, want a new one", etag)
	}
	theirs, err := ParseFragment([]byte(body))
	if err != nil {
		t.Fatalf("hub's restart fragment: %v\n%s", err, body)
	}
	if theirs.Ufrag == "" || strings.Contains(box.answer, "ice-ufrag:"+theirs.Ufrag) || len(theirs.Candidates) == 0 {
		t.Fatalf("hub's restart fragment has no new credentials or no candidates:\n%s", body)
	}
	if err := box.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: restartAnswer(t, box.answer, theirs)}); err != nil {
		t.Fatalf("box applies the hub's restart answer: %v", err)
	}

}

// restartAnswer is the box's view of the hub's restart: its last answer with the new
// credentials and candidates.
func restartAnswer(t *testing.T, last string, f *Fragment) string {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal([]byte(last)); err != nil {
		t.Fatal(err)
	}
	sd.Origin.SessionVersion++
	sd.Attributes = withCredentials(sd.Attributes, f, nil)
	for i, m := range sd.MediaDescriptions {
		var cands []string
		if i == 0 {
			for _, c := range f.Candidates {
				cands = append(cands, strings.TrimPrefix(c.Value, "candidate:"))
			}
		}
		m.Attributes = withCredentials(m.Attributes, f, cands)
	}
	b, err := sd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
