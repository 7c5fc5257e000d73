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
	t.Parallel()
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
	restartICE(t, h, box.pc, box.location, box.etag, box.answer, map[string]string{"X-Device": box.device})

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

// restartICE restarts a client's ICE through the hub as RFC 9725 §4.3.2 has it: a
// PATCH with the client's new credentials and candidates and If-Match: *, answered
// 200 with the hub's new ones and a new ETag, which the client applies as a new
// answer. It returns the new ETag.
func restartICE(t *testing.T, h *hub, pc *webrtc.PeerConnection, location, etag, lastAnswer string, header map[string]string) string {
	t.Helper()
	completeOffer(t, pc, &webrtc.OfferOptions{ICERestart: true})
	mine, err := localFragment(pc)
	if err != nil {
		t.Fatal(err)
	}
	patchHeader := map[string]string{"If-Match": "*"}
	for k, v := range header {
		patchHeader[k] = v
	}
	code, hdr, body := h.do(t, http.MethodPatch, location, fragmentType, string(mine.Marshal()), patchHeader)
	if code != http.StatusOK || hdr.Get("Content-Type") != fragmentType {
		t.Fatalf("restart PATCH: %d %s", code, body)
	}
	newETag := hdr.Get("ETag")
	if newETag == "" || newETag == etag {
		t.Errorf("restart kept ETag %q, want a new one", newETag)
	}
	// The same PATCH again, as a client sends it when the answer was lost on a failing
	// link: the same answer, not a second restart or a 412 that would cost the session.
	code, hdr, again := h.do(t, http.MethodPatch, location, fragmentType, string(mine.Marshal()), patchHeader)
	if code != http.StatusOK || hdr.Get("ETag") != newETag || again != body {
		t.Errorf("repeated restart PATCH: %d ETag %q, want 200 with the first answer and ETag %q", code, hdr.Get("ETag"), newETag)
	}
	theirs, err := ParseFragment([]byte(body))
	if err != nil {
		t.Fatalf("hub's restart fragment: %v\n%s", err, body)
	}
	if theirs.Ufrag == "" || strings.Contains(lastAnswer, "ice-ufrag:"+theirs.Ufrag) || len(theirs.Candidates) == 0 {
		t.Fatalf("hub's restart fragment has no new credentials or no candidates:\n%s", body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: restartAnswer(t, lastAnswer, theirs)}); err != nil {
		t.Fatalf("client applies the hub's restart answer: %v", err)
	}
	return newETag
}

// restartAnswer is the client's view of the hub's restart: its last answer with the new
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

// TestViewerICERestart: a doctor's viewer that changes network (Wi-Fi to cable)
// restarts ICE on its WHEP session the same way, and keeps receiving video.
func TestViewerICERestart(t *testing.T) {
	t.Parallel()
	aus := h264Clip(t, 2, 30, 30)
	h := startHub(t, Config{})
	box := publishBox(t, h, "box-ward")
	wait.For(t, 10*time.Second, "the box's connection", func() bool { return box.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	box.play(aus, 30)
	v := watch(t, h, "box-ward")
	if v.code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", v.code, v.body)
	}
	wait.For(t, 10*time.Second, "video at the viewer", func() bool { return len(v.received()) > 20 })
	states := watchICE(v.pc)
	restartICE(t, h, v.pc, v.location, v.etag, v.body, nil)
	mark := len(v.received())
	wait.For(t, 10*time.Second, "video after the viewer's restart", func() bool { return len(v.received()) > mark+30 })
	if got := states(); !strings.Contains(got, "checking connected") {
		t.Errorf("viewer's ICE went %q after the restart, want it checking again and connected", got)
	}
}
