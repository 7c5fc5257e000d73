package sfu

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"lifeline/internal/peers"
)

// testBox is a WHIP publisher written on pion for the tests: it sends real H.264
// from ffmpeg at the clip's rate, and opens the three data channels a Lifeline box
// opens.
type testBox struct {
	t        *testing.T
	hub      *hub
	device   string
	pc       *webrtc.PeerConnection
	video    *webrtc.TrackLocalStaticSample
	audio    *webrtc.TrackLocalStaticSample // nil unless G.711 was asked for
	channels map[string]*webrtc.DataChannel
	location string
	etag     string
	answer   string

	framesSent  atomic.Int64
	plis, nacks atomic.Int64 // RTCP the hub sent the box
	stop        chan struct{}
	stopped     sync.WaitGroup

	mu       sync.Mutex
	received map[string][][]byte // by label
}

// clips keeps each encoded clip for the tests that ask for the same one: encoding
// is the slowest part of many tests on a shared machine.
var clips = struct {
	sync.Mutex
	byKey map[string][][]byte
}{byKey: map[string][][]byte{}}

// h264Clip encodes a test pattern with libx264 (constrained baseline, no B-frames,
// one keyframe every gop frames) and splits it into access units.
func h264Clip(t *testing.T, seconds, fps, gop int) [][]byte {
	t.Helper()
	key := fmt.Sprint(seconds, fps, gop)
	clips.Lock()
	defer clips.Unlock()
	if aus, ok := clips.byKey[key]; ok {
		return aus
	}
	ffmpeg := peers.Need(t, "ffmpeg")[0]
	out := filepath.Join(t.TempDir(), "clip.h264")
	args := []string{"-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=" + strconv.Itoa(fps), "-t", strconv.Itoa(seconds),
		"-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop),
		"-sc_threshold", "0", "-pix_fmt", "yuv420p", "-f", "h264", out}
	if b, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	aus := accessUnits(data)
	if len(aus) != seconds*fps {
		t.Fatalf("clip has %d access units, want %d", len(aus), seconds*fps)
	}
	clips.byKey[key] = aus
	return aus
}

// accessUnits splits an Annex B stream into pictures, each with the SPS, PPS and SEI
// that precede it: a picture starts at a non-VCL unit after a slice, or at a slice
// whose first_mb_in_slice is 0.
func accessUnits(annexB []byte) [][]byte {
	var aus [][]byte
	var cur []byte
	haveSlice := false
	for _, nal := range bytes.Split(annexB, []byte{0, 0, 1}) {
		nal = bytes.TrimRight(nal, "\x00")
		if len(nal) == 0 {
			continue
		}
		typ := nal[0] & 0x1f
		vcl := typ == 1 || typ == 5
		newPicture := haveSlice && (!vcl || (len(nal) > 1 && nal[1]&0x80 != 0))
		if newPicture {
			aus = append(aus, cur)
			cur, haveSlice = nil, false
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, nal...)
		haveSlice = haveSlice || vcl
	}
	if haveSlice {
		aus = append(aus, cur)
	}
	return aus
}

// publishBox connects a pion box to the hub over WHIP.
func publishBox(t *testing.T, h *hub, device string) *testBox {
	t.Helper()
	return publishBoxWithAudio(t, h, device, "")
}

// publishBoxWithAudio connects a pion box that also sends G.711 audio (mime
// audio/PCMU or audio/PCMA) as a camera's microphone would.
func publishBoxWithAudio(t *testing.T, h *hub, device, audioMime string) *testBox {
	t.Helper()
	pc, err := boxAPI(t, audioMime).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	b := &testBox{t: t, hub: h, device: device, pc: pc, channels: map[string]*webrtc.DataChannel{},
		received: map[string][][]byte{}, stop: make(chan struct{})}
	t.Cleanup(b.close)
	b.addTracks(audioMime)
	b.openChannels()
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

// boxH264 is the format the test box sends: constrained baseline, as the box's
// publisher offers it.
var boxH264 = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}

// boxAPI is a box's pion stack: H.264, G.711 or Opus if asked, and the default
// interceptors (it answers NACKs and reads TWCC, as the real box does).
func boxAPI(t *testing.T, audioMime string) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if audioMime == webrtc.MimeTypeOpus {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}}, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	} else if audioMime != "" {
		pt := webrtc.PayloadType(0)
		if audioMime == webrtc.MimeTypePCMA {
			pt = 8
		}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: pt, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: audioMime, ClockRate: 8000}}, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 102, RTPCodecCapability: boxH264}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir))
}

// addTracks adds the box's video track and, if asked, its G.711 track.
func (b *testBox) addTracks(audioMime string) {
	t := b.t
	var err error
	b.video, err = webrtc.NewTrackLocalStaticSample(boxH264, "video", b.device)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := b.pc.AddTransceiverFromTrack(b.video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	go b.countRTCP(tr.Sender())
	if audioMime == "" {
		return
	}
	b.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: audioMime, ClockRate: 8000}, "audio", b.device)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.pc.AddTransceiverFromTrack(b.audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
}

// openChannels opens the three data channels of a Lifeline box and records what
// arrives on them.
func (b *testBox) openChannels() {
	unordered, none := false, uint16(0)
	for label, init := range map[string]*webrtc.DataChannelInit{
		"vitals": nil, "vitals-wave": {Ordered: &unordered, MaxRetransmits: &none}, "control": nil,
	} {
		dc, err := b.pc.CreateDataChannel(label, init)
		if err != nil {
			b.t.Fatal(err)
		}
		dc.OnMessage(func(msg webrtc.DataChannelMessage) {
			b.mu.Lock()
			b.received[label] = append(b.received[label], msg.Data)
			b.mu.Unlock()
		})
		b.channels[label] = dc
	}
}

// channelsOpen reports whether all the box's data channels are open.
func (b *testBox) channelsOpen() bool {
	for _, dc := range b.channels {
		if dc.ReadyState() != webrtc.DataChannelStateOpen {
			return false
		}
	}
	return true
}

// completeOffer creates an offer (an ICE restart one if opts says so), sets it and
// returns it once its candidates are in.
func completeOffer(t *testing.T, pc *webrtc.PeerConnection, opts *webrtc.OfferOptions) string {
	t.Helper()
	offer, err := pc.CreateOffer(opts)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		t.Fatal("gathering candidates timed out")
	}
	return pc.LocalDescription().SDP
}

// play sends the access units at fps, from the first, in a loop, until the box is
// closed.
func (b *testBox) play(aus [][]byte, fps int) {
	b.stopped.Add(1)
	go func() {
		defer b.stopped.Done()
		tick := time.NewTicker(time.Second / time.Duration(fps))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-b.stop:
				return
			case <-tick.C:
			}
			if err := b.video.WriteSample(media.Sample{Data: aus[i%len(aus)], Duration: time.Second / time.Duration(fps)}); err != nil {
				return
			}
			b.framesSent.Add(1)
		}
	}()
}

// speak sends a 440 Hz tone on the box's G.711 track every 20 ms until the box is
// closed. Both laws encode silence and a tone alike for this purpose: the viewer only
// needs packets it can decode.
func (b *testBox) speak() {
	b.stopped.Add(1)
	go func() {
		defer b.stopped.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		frame := make([]byte, 160)
		for n := 0; ; n++ {
			select {
			case <-b.stop:
				return
			case <-tick.C:
			}
			for i := range frame {
				x := math.Sin(2 * math.Pi * 440 * float64(n*160+i) / 8000)
				frame[i] = linearToMuLaw(int16(x * 8000))
			}
			if err := b.audio.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond}); err != nil {
				return
			}
		}
	}()
}

// linearToMuLaw encodes one sample in G.711 µ-law (ITU-T G.711 §3).
func linearToMuLaw(s int16) byte {
	const bias, clip = 0x84, 32635
	sign := byte(0)
	v := int(s)
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^(sign | byte(exp<<4) | byte(mant))
}

func (b *testBox) messages(label string) [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]byte(nil), b.received[label]...)
}

func (b *testBox) close() {
	select {
	case <-b.stop:
		return
	default:
	}
	close(b.stop)
	b.stopped.Wait()
	b.pc.Close()
}

// countRTCP counts the keyframe requests and NACKs the hub sends the box.
func (b *testBox) countRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication:
				b.plis.Add(1)
			case *rtcp.TransportLayerNack:
				b.nacks.Add(1)
			}
		}
	}
}

// testViewer is a WHEP viewer on pion, for tests that need many viewers, RTCP of
// their own making, or a look at the sequence numbers.
type testViewer struct {
	pc       *webrtc.PeerConnection
	code     int
	body     string
	location string
	etag     string
	// retryAfter is the hub's Retry-After on a refusal.
	retryAfter string

	mu      sync.Mutex
	seqs    []uint16 // every video packet's sequence number, in arrival order
	video   *webrtc.TrackRemote
	receivr *webrtc.RTPReceiver
}

// watch connects a pion viewer to device over WHEP; code is the hub's answer.
func watch(t *testing.T, h *hub, device string) *testViewer {
	t.Helper()
	// SRTP replay protection would drop a retransmission of a packet the viewer
	// already has; the NACK test sends exactly those, to see them come back.
	var se webrtc.SettingEngine
	se.DisableSRTPReplayProtection(true)
	pc, err := viewerAPI(t, se).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	v := &testViewer{pc: pc}
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		v.mu.Lock()
		v.video, v.receivr = tr, recv
		v.mu.Unlock()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.mu.Lock()
			v.seqs = append(v.seqs, p.SequenceNumber)
			v.mu.Unlock()
		}
	})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	code, hdr, body := h.do(t, http.MethodPost, "/whep/"+device, sdpType, completeOffer(t, pc, nil), nil)
	v.code, v.body, v.location, v.etag, v.retryAfter = code, body, hdr.Get("Location"), hdr.Get("ETag"), hdr.Get("Retry-After")
	if code == http.StatusCreated {
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// viewerAPI is a pion viewer's stack with the given settings.
func viewerAPI(t *testing.T, se webrtc.SettingEngine) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir))
}

// received returns the sequence numbers received so far.
func (v *testViewer) received() []uint16 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]uint16(nil), v.seqs...)
}

// sendRTCP sends the hub RTCP about the viewer's video track.
func (v *testViewer) sendRTCP(t *testing.T, make func(mediaSSRC uint32) rtcp.Packet) {
	t.Helper()
	v.mu.Lock()
	tr := v.video
	v.mu.Unlock()
	if tr == nil {
		t.Fatal("no video track yet")
	}
	if err := v.pc.WriteRTCP([]rtcp.Packet{make(uint32(tr.SSRC()))}); err != nil {
		t.Fatal(err)
	}
}
