package sfu

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestRepublishKeepsViewersAndRevokeEndsThem follows a box through the two ways its
// session can end. When the box publishes again (it lost its session, or restarted),
// the new session replaces the old and the viewer keeps watching on the same
// connection with sequence numbers that simply continue. When the box is revoked,
// its session and every view of it end at once, and the audit hears of each.
func TestRepublishKeepsViewersAndRevokeEndsThem(t *testing.T) {
	t.Parallel()
	aus := h264Clip(t, 2, 30, 30)
	h := startHub(t, Config{})
	first := publishBox(t, h, "box-re")
	wait.For(t, 10*time.Second, "the box's connection", func() bool { return first.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	first.play(aus, 30)
	v := watch(t, h, "box-re")
	if v.code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", v.code, v.body)
	}
	wait.For(t, 10*time.Second, "video at the viewer", func() bool { return len(v.received()) > 30 })

	second := publishBox(t, h, "box-re")
	first.close()
	wait.For(t, 10*time.Second, "the second session's connection", func() bool { return second.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	mark := len(v.received())
	second.play(aus, 30)
	wait.For(t, 10*time.Second, "video from the second session at the viewer", func() bool { return len(v.received()) > mark+60 })
	seqs := v.received()
	for i := 1; i < len(seqs); i++ {
		if d := seqs[i] - seqs[i-1]; d != 1 && d < 1<<15 && d > 64 {
			t.Fatalf("viewer's sequence jumped by %d at packet %d: the switch of session broke its numbering", d, i)
		}
	}
	if st := v.pc.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
		t.Errorf("viewer is %s after the box re-published, want still connected", st)
	}
	if st := h.sfu.Status(); len(st.Sessions) != 1 || "/whip/"+st.Sessions[0].Session != second.location || len(st.Sessions[0].Viewers) != 1 {
		t.Errorf("status after re-publishing: %+v", st.Sessions)
	}

	if !h.sfu.Revoke("box-re") {
		t.Fatal("Revoke found no session")
	}
	wait.For(t, 5*time.Second, "the viewer's connection to end", func() bool {
		st := v.pc.ConnectionState()
		return st == webrtc.PeerConnectionStateClosed || st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateDisconnected
	})
	if code, _, body := h.do(t, http.MethodPatch, second.location, fragmentType, "a=end-of-candidates\r\n",
		map[string]string{"X-Device": "box-re", "If-Match": second.etag}); code != http.StatusNotFound {
		t.Errorf("PATCH on the revoked session: %d %s, want 404 so the box knows to POST", code, body)
	}
	var got []string
	h.mu.Lock()
	for _, e := range h.events {
		got = append(got, string(e.Kind)+"/"+e.Reason)
	}
	h.mu.Unlock()
	joined := strings.Join(got, "\n")
	for _, want := range []string{"stream.session.ended/replaced by the box's new session", "stream.session.ended/device revoked", "stream.viewer.left/the box's session ended: device revoked"} {
		if !strings.Contains(joined, want) {
			t.Errorf("events lack %q; got:\n%s", want, joined)
		}
	}
}

// TestChromiumKeepsWatchingWhenTheBoxRepublishes: after an outage longer than the
// session timeout the box starts a new session; a doctor's Chromium, still on its
// old WHEP session, must go on decoding the new session's picture without
// reconnecting.
func TestChromiumKeepsWatchingWhenTheBoxRepublishes(t *testing.T) {
	aus := h264Clip(t, 2, 30, 30)
	h := startHub(t, Config{})
	tab := peers.Browser(t, peers.BrowserOptions{})
	h.openPage(t, tab)
	first := publishBox(t, h, "box-again")
	wait.For(t, 10*time.Second, "the box's connection", func() bool { return first.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	first.play(aus, 30)
	peers.Eval[string](t, tab, `view("/whep/box-again")`)
	wait.For(t, 10*time.Second, "frames from the first session", func() bool { return peers.Eval[videoStats](t, tab, `videoStats()`).FramesDecoded > 15 })

	first.close()
	second := publishBox(t, h, "box-again")
	wait.For(t, 10*time.Second, "the second session's connection", func() bool { return second.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	before := peers.Eval[videoStats](t, tab, `videoStats()`).FramesDecoded
	second.play(aus, 30)
	wait.For(t, 5*time.Second, "a second of frames from the new session", func() bool {
		return peers.Eval[videoStats](t, tab, `videoStats()`).FramesDecoded > before+30
	})
	if st := peers.Eval[string](t, tab, `viewer.connectionState`); st != "connected" {
		t.Errorf("viewer is %s, want still connected on its first WHEP session", st)
	}
}

// TestViewersWaitForALostBoxThenLeave: when a box's connection is lost, its viewers
// stay for ReconnectGrace and are then let go, with the reason in the audit; a new
// viewer meanwhile hears that the box is not publishing.
func TestViewersWaitForALostBoxThenLeave(t *testing.T) {
	t.Parallel()
	h := startHub(t, Config{ReconnectGrace: 500 * time.Millisecond})
	box := publishBox(t, h, "box-gone")
	wait.For(t, 10*time.Second, "the box's connection", func() bool { return box.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	v := watch(t, h, "box-gone")
	if v.code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", v.code, v.body)
	}
	wait.For(t, 10*time.Second, "the viewer's connection", func() bool { return v.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	lostAt := time.Now()
	box.close()
	wait.For(t, 5*time.Second, "the box's session to end", func() bool { return len(h.sfu.Status().Sessions) == 0 })
	if late := watch(t, h, "box-gone"); late.code != http.StatusNotFound {
		t.Errorf("a new viewer of the lost box got %d, want 404", late.code)
	}
	if st := v.pc.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
		t.Errorf("viewer is %s right after the box was lost, want still connected", st)
	}
	wait.For(t, 5*time.Second, "the viewer to be let go", func() bool { return v.pc.ConnectionState() != webrtc.PeerConnectionStateConnected })
	if waited := time.Since(lostAt); waited < 500*time.Millisecond {
		t.Errorf("viewer let go %s after the box was lost, before the 500 ms grace", waited)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	last := h.events[len(h.events)-1]
	if last.Kind != ViewerLeft || !strings.Contains(last.Reason, "did not publish again within 500ms") {
		t.Errorf("last event %+v, want the viewer leaving because the box did not come back", last)
	}
}

// TestRevokeLetsWaitingViewersGo: revoking a box whose viewers wait for it to come
// back ends their views at once, rather than at the end of the grace period.
func TestRevokeLetsWaitingViewersGo(t *testing.T) {
	t.Parallel()
	h := startHub(t, Config{ReconnectGrace: time.Minute})
	box := publishBox(t, h, "box-stolen")
	wait.For(t, 10*time.Second, "the box's connection", func() bool { return box.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	v := watch(t, h, "box-stolen")
	if v.code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", v.code, v.body)
	}
	wait.For(t, 10*time.Second, "the viewer's connection", func() bool { return v.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	box.close()
	wait.For(t, 5*time.Second, "the box's session to end", func() bool { return len(h.sfu.Status().Sessions) == 0 })
	h.sfu.Revoke("box-stolen")
	wait.For(t, 5*time.Second, "the waiting viewer to be let go", func() bool {
		return v.pc.ConnectionState() != webrtc.PeerConnectionStateConnected
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if last := h.events[len(h.events)-1]; last.Kind != ViewerLeft || !strings.Contains(last.Reason, "revoked") {
		t.Errorf("last event %+v, want the viewer leaving because the box was revoked", last)
	}
}
