package camera

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
	"lifeline/stream/h264"
)

// TestRTPFromFFmpeg has ffmpeg send a 2 s clip (two slices a picture, an IDR every
// second) as RTP to the source, as `ffmpeg -c copy -f rtp` from a camera's recording
// does, and expects every picture of the file, whole, with SPS and PPS before each
// IDR and durations from the RTP clock.
func TestRTPFromFFmpeg(t *testing.T) {
	t.Parallel()
	ffmpeg := peers.Need(t, "ffmpeg")[0]
	mp4 := encode(t, "clip.mp4", "320x240", 2, 30, "baseline", "mp4", "-x264-params", "slices=2")
	ref := filepath.Join(t.TempDir(), "ref.h264")
	if msg, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", mp4, "-c", "copy",
		"-bsf:v", "h264_mp4toannexb", "-f", "h264", "-y", ref).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	want := h264.SplitAccessUnits(data, 3000)
	if len(want) != 60 {
		t.Fatalf("reference has %d pictures, want 60", len(want))
	}

	src := NewRTPSource("127.0.0.1:0", 10*time.Second)
	var rec recorder
	stop := run(t, src, rec.emit)
	var addr string
	select {
	case addr = <-src.Bound():
	case <-time.After(10 * time.Second):
		t.Fatal("source did not bind")
	}
	send := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-i", mp4, "-c", "copy",
		"-bsf:v", "h264_mp4toannexb", "-f", "rtp", "rtp://"+addr)
	if msg, err := send.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg -f rtp: %v: %s", err, msg)
	}
	wait.For(t, 5*time.Second, "60 frames", func() bool { return rec.count(H264) >= 60 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	frames := rec.video()
	if len(frames) != 60 {
		t.Fatalf("%d frames, want 60 (status %+v)", len(frames), src.Status())
	}
	checkKeyframes(t, frames)
	for i, f := range frames {
		if !bytes.Equal(f.Data, want[i].Data) || f.Keyframe != want[i].IDR {
			t.Fatalf("frame %d differs from the file's picture %d (%d bytes, want %d)", i, i, len(f.Data), len(want[i].Data))
		}
		if d := f.Duration - time.Second/30; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("frame %d lasts %s, want 33.3 ms", i, f.Duration)
		}
	}
	st := src.Status()
	if st.Frames != 60 || st.Keyframes != 2 || st.LostPackets != 0 || st.Width != 320 || st.Height != 240 ||
		st.Profile == "" || !st.Forwardable {
		t.Errorf("status %+v", st)
	}
}

// TestRTPSourceSilence expects an error naming the port when nothing arrives.
func TestRTPSourceSilence(t *testing.T) {
	src := NewRTPSource("127.0.0.1:0", 200*time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- src.Run(t.Context(), func(Frame) {}) }()
	select {
	case err := <-done:
		if err == nil || src.Status().LastError == "" {
			t.Fatalf("Run: %v, status %+v; want a timeout error", err, src.Status())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not give up on silence")
	}
}

// TestRTPSourceIgnoresStrangers replays what ffmpeg's RTP muxer sent for a High-profile
// clip with B-frames (stream/h264's capture), with datagrams from strangers among it:
// garbage, RTCP, a static payload type, and a second sender. The source must follow the
// first sender only, deliver every picture, and say that browsers will not show this
// camera well.
func TestRTPSourceIgnoresStrangers(t *testing.T) {
	data, err := os.ReadFile("../h264/testdata/ffmpeg_high_bframes_4slices.rtp")
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for len(data) >= 2 {
		n := int(data[0])<<8 | int(data[1])
		pkts = append(pkts, data[2:2+n])
		data = data[2+n:]
	}
	src := NewRTPSource("127.0.0.1:0", 10*time.Second)
	var rec recorder
	stop := run(t, src, rec.emit)
	addr := <-src.Bound()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stranger, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, SSRC: 0xdeadbeef, Marker: true},
		Payload: []byte{0x65, 0x88, 0x84, 0x00}}).Marshal()
	pcmu, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 1}, Payload: []byte{0xff}}).Marshal()
	rtcpSR := []byte{0x80, 0xc8, 0x00, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}
	junk := [][]byte{[]byte("hello camera"), rtcpSR, pcmu, stranger}
	// About 45 KB in all: well within a loopback socket's receive buffer.
	for i, p := range pkts {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
		if i%10 == 5 {
			if _, err := conn.Write(junk[i/10%len(junk)]); err != nil {
				t.Fatal(err)
			}
		}
	}
	wait.For(t, 5*time.Second, "60 frames", func() bool { return rec.count(H264) >= 60 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	frames := rec.video()
	checkKeyframes(t, frames)
	st := src.Status()
	if len(frames) != 60 || st.LostPackets != 0 || !st.BFrames || st.Forwardable || !hasProblem(st, "High profile") || !hasProblem(st, "B-frames") {
		t.Errorf("%d frames, status %+v", len(frames), st)
	}
	// The capture's timestamps are presentation times, back and forth across the
	// B-frames. From the first B-frame on (picture 2; the P-frame before it is timed
	// by its gap, as B-frames are not known yet) every picture must last one frame by
	// the SPS, and all must add up to the two seconds played, give or take that one.
	var total time.Duration
	for i, f := range frames {
		if i >= 2 && f.Duration != time.Second/30 {
			t.Errorf("frame %d lasts %s, want 33.3 ms", i, f.Duration)
		}
		total += f.Duration
	}
	if total < 1950*time.Millisecond || total > 2100*time.Millisecond {
		t.Errorf("60 frames last %s, want about 2 s", total)
	}
}

// TestRTPSourceOnlyGarbage sends datagrams that are not H.264 RTP, steadily, and
// expects the source to give up saying so rather than wait for ever.
func TestRTPSourceOnlyGarbage(t *testing.T) {
	src := NewRTPSource("127.0.0.1:0", 300*time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- src.Run(t.Context(), func(Frame) {}) }()
	conn, err := net.Dial("udp", <-src.Bound())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pcmu, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 1}, Payload: []byte{0xff}}).Marshal()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "nothing usable") {
				t.Fatalf("Run: %v, want it to say nothing usable arrived", err)
			}
			return
		case <-tick.C:
			_, _ = conn.Write(pcmu)
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not give up")
		}
	}
}

// TestRTPSourceNamesH265 has ffmpeg send H.265 (libx265) where H.264 is expected and
// expects the status to say so, instead of leaving the viewers a black screen.
func TestRTPSourceNamesH265(t *testing.T) {
	t.Parallel()
	ffmpeg := peers.Need(t, "ffmpeg")[0]
	src := NewRTPSource("127.0.0.1:0", 10*time.Second)
	run(t, src, func(Frame) {})
	send := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
		"testsrc2=size=640x360:rate=30:duration=2", "-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "log-level=error", "-f", "rtp", "rtp://"+<-src.Bound())
	if msg, err := send.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	wait.For(t, 5*time.Second, "H.265 named in the status", func() bool { return hasProblem(src.Status(), "H.265") })
	if st := src.Status(); st.Forwardable || st.Codec != H265 || st.Frames != 0 {
		t.Errorf("status %+v", st)
	}
}

// TestRTPFromFFmpegMP4WithSDP has ffmpeg send an MP4 recording as it is
// (`-c copy -f rtp`, no bitstream filter): the SPS and PPS then travel only in the SDP
// ffmpeg writes, never in band. With the SDP file named in the URL, every picture of
// the recording plays; without it, the status says why nothing does.
func TestRTPFromFFmpegMP4WithSDP(t *testing.T) {
	t.Parallel()
	ffmpeg := peers.Need(t, "ffmpeg")[0]
	mp4 := encode(t, "rec.mp4", "320x180", 2, 30, "baseline", "mp4")
	sdp := filepath.Join(t.TempDir(), "rec.sdp")
	// ffmpeg writes the SDP when it starts; a first run to the discard port makes it.
	if msg, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", mp4, "-c", "copy", "-t", "0.1",
		"-f", "rtp", "-sdp_file", sdp, "rtp://127.0.0.1:9").CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	for _, withSDP := range []bool{true, false} {
		url := "rtp://" + freeUDPPort(t)
		if withSDP {
			url += "?sdp=" + sdp
		}
		opened, err := Open(url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		src := opened.(*RTPSource)
		var rec recorder
		stop := run(t, src, rec.emit)
		send := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-i", mp4, "-c", "copy", "-f", "rtp", "rtp://"+<-src.Bound())
		if msg, err := send.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg -f rtp: %v: %s", err, msg)
		}
		if withSDP {
			wait.For(t, 5*time.Second, "60 frames", func() bool { return rec.count(H264) >= 60 })
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		frames, st := rec.video(), src.Status()
		if withSDP {
			checkKeyframes(t, frames)
			if len(frames) != 60 || !frames[0].Keyframe || st.Keyframes != 2 {
				t.Errorf("with the SDP: %d frames, status %+v", len(frames), st)
			}
		} else if len(frames) != 0 || !hasProblem(st, "No SPS/PPS") || st.Forwardable {
			t.Errorf("without the SDP: %d frames, status %+v", len(frames), st)
		}
	}
}

// freeUDPPort returns a loopback address whose UDP port was free a moment ago, for
// tests that must put the port in a URL.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}
