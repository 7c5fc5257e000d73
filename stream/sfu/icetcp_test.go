package sfu

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"lifeline/internal/wait"
)

// TestViewerOverICETCP watches a box from a viewer that may use TCP only, as on a
// hospital network that blocks UDP: the hub's answer offers a passive TCP candidate
// on its ICE-TCP port, and video arrives over it. The hub's metrics count what went
// out.
func TestViewerOverICETCP(t *testing.T) {
	t.Parallel()
	aus := h264Clip(t, 2, 30, 30)
	reg := prometheus.NewRegistry()
	h := startHub(t, Config{Registerer: reg})
	box := publishBox(t, h, "box-tcp")
	wait.For(t, 10*time.Second, "the box's connection", func() bool { return box.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	box.play(aus, 30)

	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	se.SetIncludeLoopbackCandidate(true)
	pc, err := viewerAPI(t, se).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	got := make(chan struct{}, 1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for n := 0; ; n++ {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			if n == 30 {
				got <- struct{}{}
			}
		}
	})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	code, _, answer := h.do(t, http.MethodPost, "/whep/box-tcp", sdpType, completeOffer(t, pc, nil), nil)
	if code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", code, answer)
	}
	tcpPort := h.sfu.Status().TCP[strings.LastIndex(h.sfu.Status().TCP, ":")+1:]
	if !strings.Contains(answer, "tcp") || !strings.Contains(answer, " "+tcpPort+" typ host tcptype passive") {
		t.Fatalf("the hub's answer has no passive TCP candidate on port %s:\n%s", tcpPort, answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatalf("no video over ICE-TCP; viewer is %s", pc.ICEConnectionState())
	}
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local.Protocol != webrtc.ICEProtocolTCP {
		t.Errorf("selected pair %v (%v), want TCP", pair, err)
	}
	if sent := testutil.ToFloat64(h.sfu.metrics.bytesOut); sent == 0 {
		t.Errorf("lifeline_sfu_rtp_sent_bytes_total is 0 after video went out")
	}
	if n, err := testutil.GatherAndCount(reg, "lifeline_sfu_viewers"); err != nil || n != 1 {
		t.Errorf("viewer gauge not registered: %d, %v", n, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics do not follow Prometheus conventions: %v %v", problems, err)
	}
}
