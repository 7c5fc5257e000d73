package sfu

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// talkbackBox is a pion box that, besides its video, offers to receive audio: the
// crew's loudspeaker for a doctor's push-to-talk.
type talkbackBox struct {
	*testBox
	mu       sync.Mutex
	packets  int
	bytes    int
	mimeType string
}

func (b *talkbackBox) heard() (packets, bytes int, mime string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.packets, b.bytes, b.mimeType
}

func publishTalkbackBox(t *testing.T, h *hub, device string) *talkbackBox {
	t.Helper()
	pc, err := boxAPI(t, webrtc.MimeTypeOpus).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	b := &talkbackBox{testBox: &testBox{t: t, hub: h, device: device, pc: pc, channels: map[string]*webrtc.DataChannel{},
		received: map[string][][]byte{}, stop: make(chan struct{})}}
	t.Cleanup(b.close)
	b.addTracks("")
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.packets++
			b.bytes += len(p.Payload)
			b.mimeType = tr.Codec().MimeType
			b.mu.Unlock()
		}
	})
	code, hdr, body := h.do(t, http.MethodPost, "/whip", sdpType, completeOffer(t, pc, nil), map[string]string{"X-Device": device})
	if code != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", code, body)
	}
	b.location, b.etag, b.answer = hdr.Get("Location"), hdr.Get("ETag"), body
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTalkbackReachesTheCrew: a doctor's Chromium sends its (fake) microphone with
// its WHEP offer; the crew hears nothing until the hub is told that this viewer may
// speak, then hears Opus carrying the tone, and nothing again once talk-back stops.
func TestTalkbackReachesTheCrew(t *testing.T) {
	wav := fakeMicrophone(t)
	h := startHub(t, Config{})
	tab := peers.Browser(t, peers.BrowserOptions{FakeAudio: wav})
	h.openPage(t, tab)
	box := publishTalkbackBox(t, h, "box-talk")
	wait.For(t, 10*time.Second, "the box's connection", func() bool { return box.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })

	loc := peers.Eval[string](t, tab, `view("/whep/box-talk", true)`)
	session := loc[strings.LastIndex(loc, "/")+1:]
	wait.For(t, 10*time.Second, "the doctor's connection", func() bool { return peers.Eval[string](t, tab, `viewer.connectionState`) == "connected" })
	// Chromium sends from the start; give it half a second to prove nothing leaks.
	quiet := time.Now()
	wait.For(t, 2*time.Second, "half a second of the doctor's microphone", func() bool { return time.Since(quiet) > 500*time.Millisecond })
	if n, _, _ := box.heard(); n != 0 {
		t.Fatalf("the crew heard %d packets before talk-back was allowed", n)
	}

	if err := h.sfu.Talkback("box-talk", session); err != nil {
		t.Fatal(err)
	}
	if st := h.sfu.Status(); len(st.Sessions) != 1 || st.Sessions[0].Talkback != session || !st.Sessions[0].TalkbackOffered {
		t.Errorf("status does not name the speaker %s: %+v", session, st.Sessions)
	}
	wait.For(t, 5*time.Second, "the doctor's voice at the box", func() bool { n, _, _ := box.heard(); return n > 50 })
	n, bytes, mime := box.heard()
	if mime != webrtc.MimeTypeOpus || bytes/n < 20 {
		t.Errorf("crew got %d packets of %s averaging %d bytes, want Opus carrying a tone (not silence)", n, mime, bytes/n)
	}

	if err := h.sfu.Talkback("box-talk", ""); err != nil {
		t.Fatal(err)
	}
	stopped, _, _ := box.heard()
	mark := time.Now()
	wait.For(t, 2*time.Second, "half a second after talk-back stopped", func() bool { return time.Since(mark) > 500*time.Millisecond })
	if after, _, _ := box.heard(); after > stopped+2 {
		t.Errorf("the crew heard %d packets after talk-back stopped", after-stopped)
	}
	if err := h.sfu.Talkback("box-talk", "no-such-session"); err == nil {
		t.Error("talk-back for an unknown viewer session was accepted")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var kinds []string
	for _, e := range h.events {
		kinds = append(kinds, string(e.Kind))
	}
	if got := strings.Join(kinds, " "); !strings.Contains(got, "stream.talkback.started stream.talkback.stopped") {
		t.Errorf("events %s lack talk-back started then stopped", got)
	}
}
