package sfu

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lifeline/internal/wait"
)

// vp8Peer is a peer that speaks VP8 only, a format the hub does not forward.
func vp8Peer(t *testing.T, dir webrtc.RTPTransceiverDirection) *webrtc.PeerConnection {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: dir}); err != nil {
		t.Fatal(err)
	}
	return pc
}

// TestCodecMismatchIsRefused: a box that offers only a format the hub cannot forward,
// and a viewer that cannot receive the box's format, each get 406 naming the
// formats, instead of a session that would show a black screen.
func TestCodecMismatchIsRefused(t *testing.T) {
	t.Parallel()
	h := startHub(t, Config{})
	box := vp8Peer(t, webrtc.RTPTransceiverDirectionSendonly)
	code, _, body := h.do(t, http.MethodPost, "/whip", sdpType, completeOffer(t, box, nil), map[string]string{"X-Device": "box-vp8"})
	if code != http.StatusNotAcceptable || !strings.Contains(body, "H.264") {
		t.Errorf("VP8-only box: got %d %q, want 406 naming the formats the hub forwards", code, body)
	}

	good := publishBox(t, h, "box-h264")
	wait.For(t, 10*time.Second, "the box's connection", func() bool { return good.pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	viewer := vp8Peer(t, webrtc.RTPTransceiverDirectionRecvonly)
	code, _, body = h.do(t, http.MethodPost, "/whep/box-h264", sdpType, completeOffer(t, viewer, nil), nil)
	if code != http.StatusNotAcceptable || !strings.Contains(body, "profile-level-id=42e01f") {
		t.Errorf("VP8-only viewer: got %d %q, want 406 naming the box's H.264 format", code, body)
	}
	if st := h.sfu.Status(); len(st.Sessions) != 1 || len(st.Sessions[0].Viewers) != 0 {
		t.Errorf("after the refusals: %+v, want the one box and no viewer", st.Sessions)
	}
}

// TestAnnouncedAddresses: a hub behind 1:1 NAT announces its public address, not the
// one it listens on, in every candidate of its answers, for UDP and TCP alike.
func TestAnnouncedAddresses(t *testing.T) {
	t.Parallel()
	h := startHub(t, Config{Listen: "127.0.0.1:0", Addresses: []string{"127.0.0.2"}})
	box := boxAPIPeer(t)
	code, _, answer := h.do(t, http.MethodPost, "/whip", sdpType, completeOffer(t, box, nil), map[string]string{"X-Device": "box-nat"})
	if code != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", code, answer)
	}
	var udp, tcp int
	for _, line := range strings.Split(answer, "\r\n") {
		if !strings.HasPrefix(line, "a=candidate:") {
			continue
		}
		if !strings.Contains(line, " 127.0.0.2 ") {
			t.Errorf("candidate announces another address: %s", line)
		}
		if strings.Contains(strings.ToLower(line), " udp ") {
			udp++
		} else {
			tcp++
		}
	}
	if udp == 0 || tcp == 0 {
		t.Errorf("answer has %d UDP and %d TCP candidates, want both:\n%s", udp, tcp, answer)
	}
}

// boxAPIPeer is a box's peer connection with a video track, not yet offered.
func boxAPIPeer(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	pc, err := boxAPI(t, "").NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	track, err := webrtc.NewTrackLocalStaticSample(boxH264, "video", "box")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	return pc
}
