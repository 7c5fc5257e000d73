package whip

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"lifeline/internal/wait"
)

// TestKeyframeRequestFromFarEnd: PLI and FIR from the far end reach the camera side
// through OnKeyframeRequest. Chromium does not ask for keyframes on demand (it decodes
// through the losses a test can make), so the far end here is a pion endpoint that
// sends them when told.
func TestKeyframeRequestFromFarEnd(t *testing.T) {
	var mu sync.Mutex
	var far *webrtc.PeerConnection
	var videoSSRC atomic.Uint32
	var readers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offer, _ := io.ReadAll(r.Body)
		se := webrtc.SettingEngine{}
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				videoSSRC.Store(uint32(tr.SSRC()))
			}
			readers.Add(1)
			go func() {
				defer readers.Done()
				for {
					if _, _, err := tr.ReadRTP(); err != nil {
						return
					}
				}
			}()
		})
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		answer, _ := pc.CreateAnswer(nil)
		gathered := webrtc.GatheringCompletePromise(pc)
		pc.SetLocalDescription(answer)
		<-gathered
		mu.Lock()
		far = pc
		mu.Unlock()
		w.Header().Set("Content-Type", contentTypeSDP)
		w.Header().Set("Location", "/whip/1")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, pc.LocalDescription().SDP)
	}))
	defer srv.Close()
	b := startBox(t, srv.URL+"/whip", "", nil)
	t.Cleanup(func() {
		b.stop()
		mu.Lock()
		if far != nil {
			far.Close()
		}
		mu.Unlock()
		readers.Wait()
	})
	wait.For(t, 20*time.Second, "the box's video at the far end", func() bool { return videoSSRC.Load() != 0 })
	before := b.p.Status().KeyframeRequests
	mu.Lock()
	err := far.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: videoSSRC.Load()}})
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the PLI to reach the camera", func() bool {
		return b.p.Status().KeyframeRequests == before+1
	})
	mu.Lock()
	err = far.WriteRTCP([]rtcp.Packet{&rtcp.FullIntraRequest{MediaSSRC: videoSSRC.Load(), FIR: []rtcp.FIREntry{{SSRC: videoSSRC.Load(), SequenceNumber: 1}}}})
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the FIR to reach the camera", func() bool {
		return b.p.Status().KeyframeRequests == before+2
	})
}
