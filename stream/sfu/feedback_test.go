package sfu

import (
	"net/http"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"lifeline/internal/wait"
)

// TestViewerFeedbackStaysAtTheHub has a pion viewer ask for keyframes 50 times in
// one second and NACK packets it already had: the box must see at most one keyframe
// request per 500 ms and no NACK at all, and the viewer must get the NACKed packets
// again, from the hub's cache, under the same sequence numbers.
func TestViewerFeedbackStaysAtTheHub(t *testing.T) {
	t.Parallel()
	aus := h264Clip(t, 2, 30, 60)
	h := startHub(t, Config{})
	box := publishBox(t, h, "box-rtcp")
	wait.For(t, 10*time.Second, "the box's connection", func() bool { return box.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	box.play(aus, 30)
	v := watch(t, h, "box-rtcp")
	if v.code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", v.code, v.body)
	}
	wait.For(t, 10*time.Second, "video at the viewer", func() bool { return len(v.received()) > 30 })

	plisBefore := box.plis.Load()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	for range 50 {
		<-tick.C
		v.sendRTCP(t, func(ssrc uint32) rtcp.Packet { return &rtcp.PictureLossIndication{MediaSSRC: ssrc} })
	}
	tick.Stop()
	elapsed := time.Since(start)
	// Allow the request in flight when the burst started, and one per interval.
	limit := int64(elapsed/(500*time.Millisecond)) + 2
	wait.For(t, 5*time.Second, "a keyframe request at the box", func() bool { return box.plis.Load() > plisBefore })
	if got := box.plis.Load() - plisBefore; got > limit {
		t.Errorf("box got %d keyframe requests for 50 PLIs in %s, want at most %d", got, elapsed.Round(time.Millisecond), limit)
	}

	seen := v.received()
	asked := seen[len(seen)-10 : len(seen)-5]
	v.sendRTCP(t, func(ssrc uint32) rtcp.Packet {
		return &rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(asked)}
	})
	wait.For(t, 5*time.Second, "the NACKed packets again at the viewer", func() bool {
		got := v.received()
		for _, s := range asked {
			n := 0
			for _, g := range got {
				if g == s {
					n++
				}
			}
			if n < 2 {
				return false
			}
		}
		return true
	})
	if n := box.nacks.Load(); n != 0 {
		t.Errorf("box got %d NACKs: the viewer's loss reached the uplink", n)
	}
	st := h.sfu.Status()
	if st.NACKsServed < uint64(len(asked)) {
		t.Errorf("status reports %d NACKs served, want at least %d", st.NACKsServed, len(asked))
	}
	t.Logf("box got %d keyframe requests for 50 PLIs in %s; status: %d PLIs forwarded, %d NACKs served",
		box.plis.Load()-plisBefore, elapsed.Round(time.Millisecond), st.PLIsForwarded, st.NACKsServed)
}
