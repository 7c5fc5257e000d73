package sfu

import (
	"bytes"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lifeline/internal/wait"
)

var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9}
	testPPS = []byte{0x68, 0xce, 0x3c, 0x80}
	pSlice  = []byte{0x41, 0x9a, 0x01}
	fuStart = []byte{0x7c, 0x85, 0xaa} // FU-A, start bit, IDR
	fuEnd   = []byte{0x7c, 0x45, 0xbb} // FU-A, end bit, IDR
)

func pkt(seq uint16, ts uint32, payload []byte) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SSRC: 42, SequenceNumber: seq, Timestamp: ts}, Payload: payload}
}

// fakeViewer is a viewer with no connection: its queue is what the test reads.
func fakeViewer(t testing.TB, queue int) *viewer {
	t.Helper()
	s, err := New(Config{
		AuthorizePublisher: func(*http.Request) (string, error) { return "", nil },
		AuthorizeViewer:    func(*http.Request, string) (string, error) { return "", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &viewer{feed: &feed{sfu: s}, queue: make(chan queued, queue), burstReady: make(chan struct{}, 1), done: make(chan struct{})}
}

// drain returns what the viewer's writer would send next: the burst, then the
// live queue.
func drain(v *viewer) []*rtp.Packet {
	var out []*rtp.Packet
	for _, q := range v.takeBurst() {
		out = append(out, q.p)
	}
	for {
		select {
		case q := <-v.queue:
			out = append(out, q.p)
		default:
			return out
		}
	}
}

func h264Source(requests *atomic.Int32) *source {
	codec := supportedCodecs()[0]
	return newSource(webrtc.RTPCodecTypeVideo, codec, 64, func() { requests.Add(1) })
}

// TestLateJoinStartsAtTheKeyframe checks the burst a late viewer gets: the packets
// from the keyframe's first packet on, numbered without a gap, the earlier pictures'
// timestamps squeezed just before the live one, and the live packets after it with
// the live spacing; a NACK gets the same packet under the same numbers.
func TestLateJoinStartsAtTheKeyframe(t *testing.T) {
	var requests atomic.Int32
	src := h264Source(&requests)
	now := time.Now()
	in := []*rtp.Packet{
		pkt(100, 1000, pSlice), // before the keyframe: not for a new viewer
		pkt(101, 4000, stapA(testSPS, testPPS)),
		pkt(102, 4000, fuStart),
		pkt(103, 4000, fuEnd),
		pkt(104, 7000, pSlice),
		pkt(105, 10000, pSlice),
	}
	for _, p := range in {
		src.push(p, now)
	}
	v := fakeViewer(t, 100)
	vt := &viewerTrack{viewer: v, kind: webrtc.RTPCodecTypeVideo, clockRate: 90000}
	src.attach(vt)
	src.push(pkt(106, 13000, pSlice), now)
	got := drain(v)
	if len(got) != 6 {
		t.Fatalf("viewer got %d packets, want the 5 from the keyframe on and 1 live", len(got))
	}
	base, ts0 := got[0].SequenceNumber, got[0].Timestamp
	wantTS := []uint32{ts0, ts0, ts0, ts0 + 1, ts0 + 2, ts0 + 2 + 3000}
	for i, p := range got {
		if p.SequenceNumber != base+uint16(i) {
			t.Errorf("packet %d has seq %d, want %d", i, p.SequenceNumber, base+uint16(i))
		}
		if p.Timestamp != wantTS[i] {
			t.Errorf("packet %d has ts %d, want %d", i, p.Timestamp, wantTS[i])
		}
		if i < 5 && !bytes.Equal(p.Payload, in[i+1].Payload) {
			t.Errorf("packet %d carries %x, want %x", i, p.Payload, in[i+1].Payload)
		}
	}
	if requests.Load() != 0 {
		t.Errorf("a keyframe was asked of the box although the cache had one")
	}

	vt.retransmit([]uint16{base + 2, base - 1, base + 40})
	again := drain(v)
	if len(again) != 1 || again[0].SequenceNumber != base+2 || again[0].Timestamp != ts0 || !bytes.Equal(again[0].Payload, fuEnd) {
		t.Fatalf("NACK for seq %d gave %v, want the keyframe's last packet again, and nothing for unsent numbers", base+2, again)
	}
}

// TestKeyframeWithoutParameterSetsGetsThemFirst covers a camera that sends SPS and
// PPS once, at the start: a viewer joining at a later keyframe gets them first, in a
// STAP-A of their own, numbered just before the keyframe.
func TestKeyframeWithoutParameterSetsGetsThemFirst(t *testing.T) {
	var requests atomic.Int32
	src := h264Source(&requests)
	now := time.Now()
	for _, p := range []*rtp.Packet{
		pkt(10, 0, stapA(testSPS, testPPS)), pkt(11, 0, fuStart), pkt(12, 0, fuEnd),
		pkt(13, 3000, pSlice),
		pkt(14, 6000, fuStart), pkt(15, 6000, fuEnd), // a keyframe without SPS/PPS
		pkt(16, 9000, pSlice),
	} {
		src.push(p, now)
	}
	v := fakeViewer(t, 100)
	vt := &viewerTrack{viewer: v, kind: webrtc.RTPCodecTypeVideo, clockRate: 90000}
	src.attach(vt)
	got := drain(v)
	if len(got) != 4 {
		t.Fatalf("viewer got %d packets, want SPS/PPS and the 3 from the keyframe on", len(got))
	}
	h := parseH264Payload(got[0].Payload)
	if !bytes.Equal(h.sps, testSPS) || !bytes.Equal(h.pps, testPPS) {
		t.Errorf("first packet %x is not a STAP-A of the SPS and PPS", got[0].Payload)
	}
	if got[1].SequenceNumber != got[0].SequenceNumber+1 || got[0].Timestamp != got[1].Timestamp {
		t.Errorf("parameter sets (seq %d ts %d) do not come just before the keyframe (seq %d ts %d)",
			got[0].SequenceNumber, got[0].Timestamp, got[1].SequenceNumber, got[1].Timestamp)
	}
	vt.retransmit([]uint16{got[0].SequenceNumber})
	if again := drain(v); len(again) != 1 || !bytes.Equal(again[0].Payload, got[0].Payload) {
		t.Errorf("NACK of the parameter sets gave %v", again)
	}
}

// TestViewerWithoutKeyframeWaitsAndAsks: with no keyframe cached, a new viewer gets
// nothing (a decoder cannot start on a P frame) and the box is asked for one; the
// viewer starts with the keyframe when it comes.
func TestViewerWithoutKeyframeWaitsAndAsks(t *testing.T) {
	var requests atomic.Int32
	src := h264Source(&requests)
	now := time.Now()
	src.push(pkt(1, 0, pSlice), now)
	v := fakeViewer(t, 100)
	vt := &viewerTrack{viewer: v, kind: webrtc.RTPCodecTypeVideo, clockRate: 90000}
	src.attach(vt)
	src.push(pkt(2, 3000, pSlice), now)
	if got := drain(v); len(got) != 0 {
		t.Fatalf("viewer got %d packets before any keyframe", len(got))
	}
	wait.For(t, time.Second, "a keyframe request", func() bool { return requests.Load() == 1 })
	src.push(pkt(3, 6000, stapA(testSPS, testPPS)), now)
	src.push(pkt(4, 6000, fuStart), now)
	src.push(pkt(5, 6000, fuEnd), now)
	got := drain(v)
	if len(got) != 3 || got[1].SequenceNumber != got[0].SequenceNumber+1 || got[2].SequenceNumber != got[0].SequenceNumber+2 {
		t.Fatalf("viewer got %d packets from the keyframe, want its 3 in order", len(got))
	}
}

// TestSlowViewerDoesNotHoldBackOthers: a viewer whose queue is never drained loses
// its own packets, counted, while another viewer of the same box gets every one.
func TestSlowViewerDoesNotHoldBackOthers(t *testing.T) {
	src := newSource(webrtc.RTPCodecTypeAudio, supportedCodecs()[len(supportedCodecs())-3], 64, func() {})
	slow, fast := fakeViewer(t, 4), fakeViewer(t, 100)
	slowTrack := &viewerTrack{viewer: slow, kind: webrtc.RTPCodecTypeAudio, clockRate: 48000}
	fastTrack := &viewerTrack{viewer: fast, kind: webrtc.RTPCodecTypeAudio, clockRate: 48000}
	src.attach(slowTrack)
	src.attach(fastTrack)
	done := make(chan struct{})
	go func() {
		for i := range 50 {
			src.push(pkt(uint16(60000+i), uint32(i*960), []byte{0xfc, byte(i)}), time.Now())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the box's packets were held back by a viewer that does not read")
	}
	if d := slow.dropped.Load(); d != 46 {
		t.Errorf("slow viewer dropped %d packets, want 46 counted", d)
	}
	got := drain(fast)
	if len(got) != 50 {
		t.Fatalf("fast viewer got %d packets, want all 50", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].SequenceNumber != got[i-1].SequenceNumber+1 || got[i].Timestamp-got[i-1].Timestamp != 960 {
			t.Fatalf("fast viewer's packet %d breaks the numbering", i)
		}
	}
}

// TestPacerHoldsBurstToRate: 20 packets of 1250 bytes at 2 Mbit/s take 100 ms, not
// the microseconds an unpaced burst would, and closing done frees a waiting writer.
func TestPacerHoldsBurstToRate(t *testing.T) {
	p := pacer{rate: 2e6}
	done := make(chan struct{})
	start := time.Now()
	for range 20 {
		if !p.wait(1250, done) {
			t.Fatal("pacer gave up with done open")
		}
	}
	if el := time.Since(start); el < 80*time.Millisecond || el > time.Second {
		t.Errorf("20 × 1250 B at 2 Mbit/s took %s, want about 100 ms", el)
	}
	slow := pacer{rate: 8} // one byte per second
	close(done)
	if slow.wait(1, done) && slow.wait(1000, done) {
		t.Error("pacer kept a writer waiting after done closed")
	}
}

// BenchmarkFanOut measures the hub's own work per packet of a box's video for 3 and
// 20 viewers: caching, keyframe tracking, rewriting and queueing (not SRTP or the
// socket, which pion and the kernel do per viewer in any SFU).
func BenchmarkFanOut(b *testing.B) {
	for _, viewers := range []int{3, 20} {
		b.Run(fmt.Sprintf("viewers=%d", viewers), func(b *testing.B) {
			var requests atomic.Int32
			src := h264Source(&requests)
			src.cache = newPacketCache(4096)
			src.push(pkt(0, 0, stapA(testSPS, testPPS)), time.Now())
			src.push(pkt(1, 0, []byte{0x65, 0x88}), time.Now()) // an IDR: viewers start at once
			stop := make(chan struct{})
			defer close(stop)
			for range viewers {
				v := fakeViewer(b, 1024)
				go func() {
					for {
						select {
						case <-v.queue:
						case <-stop:
							return
						}
					}
				}()
				src.attach(&viewerTrack{viewer: v, kind: webrtc.RTPCodecTypeVideo, clockRate: 90000})
			}
			payload := make([]byte, 1200)
			payload[0] = 0x41
			now := time.Now()
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				src.push(pkt(uint16(i+2), uint32(3000+i/4*3000), payload), now)
			}
			b.StopTimer()
			var dropped uint64
			for vt := range src.sinks {
				dropped += vt.viewer.dropped.Load()
			}
			b.ReportMetric(float64(dropped)/float64(b.N*viewers), "dropped/packet")
		})
	}
}
