package camera

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"lifeline/internal/peers"
	"lifeline/stream/h264"
)

// chromiumPage receives one video track per call of receive(), and reports what its
// decoder made of it.
const chromiumPage = `
window.pcs = {};
window.receive = async (id) => {
  const pc = new RTCPeerConnection();
  pcs[id] = pc;
  pc.addTransceiver('video', {direction: 'recvonly'});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === 'complete') r(); else pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') r(); }; });
  return pc.localDescription.sdp;
};
window.answer = async (id, sdp) => { await pcs[id].setRemoteDescription({type: 'answer', sdp}); return true; };
window.decoded = async (id) => {
  const out = {received: 0, decoded: 0, width: 0};
  (await pcs[id].getStats()).forEach(r => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') { out.received = r.framesReceived || 0; out.decoded = r.framesDecoded || 0; out.width = r.frameWidth || 0; }
  });
  return JSON.stringify(out);
};
true`

type chromiumResult struct {
	Received, Decoded, Width int
}

// chromiumDecodes sends the pictures of an Annex B file, looping, for 3 s to
// Chromium over WebRTC, offered as Constrained Baseline (42e01f) as the box's
// publisher does, and returns what Chromium received and decoded.
func chromiumDecodes(t *testing.T, tab context.Context, id, file string) chromiumResult {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	aus := h264.SplitAccessUnits(data, 3000)
	track := publishTo(t, tab, id)
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for i := range 90 {
		<-tick.C
		if err := track.WriteSample(media.Sample{Data: aus[i%len(aus)].Data, Duration: time.Second / 30}); err != nil {
			t.Fatal(err)
		}
	}
	var res chromiumResult
	for range 20 { // let the last pictures arrive and be decoded
		raw, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf("decoded(%q)", id), chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(raw), &res); err != nil {
			t.Fatal(err)
		}
		if res.Received >= 80 {
			break
		}
		<-tick.C
	}
	return res
}

// TestWhatChromiumDecodes checks what the status says about profiles and B-frames
// against Debian's Chromium, receiving over WebRTC what the publisher sends: H.264
// offered as Constrained Baseline (42e01f), the camera's pictures as they are. High
// profile without B-frames decodes (so the status only warns); pictures with B-frames
// do not, only the keyframes among them (so the status says it cannot be forwarded).
func TestWhatChromiumDecodes(t *testing.T) {
	t.Parallel()
	tab := peers.Browser(t, peers.BrowserOptions{})
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](chromiumPage)); err != nil {
		t.Fatal(err)
	}
	highNoB := encode(t, "high.h264", "320x180", 2, 30, "high", "h264", "-bf", "0")
	cases := []struct {
		name, file string
		decodes    bool
	}{
		{"baseline", "../h264/testdata/baseline.h264", true},
		{"high without B-frames", highNoB, true},
		{"high with B-frames", "../h264/testdata/high_bframes_4slices.h264", false},
	}
	for i, c := range cases {
		res := chromiumDecodes(t, tab, fmt.Sprint(i), c.file)
		t.Logf("%s: %+v", c.name, res)
		if res.Received < 60 {
			t.Fatalf("%s: Chromium received %d of 90 pictures", c.name, res.Received)
		}
		if decodes := res.Decoded*10 >= res.Received*9; decodes != c.decodes {
			t.Errorf("%s: Chromium decoded %d of %d pictures; the status assumes it decodes them: %v", c.name, res.Decoded, res.Received, c.decodes)
		}
	}
}

// publishTo connects a pion peer connection to a new receiving peer connection id in
// the page, with an H.264 track offered as Constrained Baseline (42e01f) as the box's
// publisher offers it, and returns the track. The connection closes with the test.
func publishTo(t *testing.T, tab context.Context, id string) *webrtc.TrackLocalStaticSample {
	t.Helper()
	offer, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf("receive(%q)", id), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: codec, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	track, err := webrtc.NewTrackLocalStaticSample(codec, "video", id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](fmt.Sprintf("answer(%q, %q)", id, pc.LocalDescription().SDP), chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("Chromium did not connect")
	}
	return track
}
