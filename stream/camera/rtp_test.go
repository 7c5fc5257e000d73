package camera

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
	"lifeline/stream/h264"
)

// TestRTPFromFFmpeg has ffmpeg send a 2 s clip (two slices a picture, an IDR every
// second) as RTP to the source, as `ffmpeg -c copy -f rtp` from a camera's recording
// does, and expects every picture of the file, whole, with SPS and PPS before each
// IDR and durations from the RTP clock.
func TestRTPFromFFmpeg(t *testing.T) {
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
