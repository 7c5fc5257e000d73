package camera

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"lifeline/internal/peers"
	"lifeline/stream/h264"
)

// encode makes an H.264 clip of ffmpeg's testsrc2 with libx264 into the test's
// temporary directory and returns its path. container is "h264" (Annex B, SPS and
// PPS before every IDR) or "mp4".
func encode(t *testing.T, name, size string, seconds, gop int, profile, container string, extra ...string) string {
	t.Helper()
	ffmpeg := peers.Need(t, "ffmpeg")[0]
	out := filepath.Join(t.TempDir(), name)
	args := []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
		"testsrc2=size=" + size + ":rate=30:duration=" + strconv.Itoa(seconds),
		"-c:v", "libx264", "-profile:v", profile, "-pix_fmt", "yuv420p", "-preset", "veryfast",
		"-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0"}
	args = append(args, extra...)
	args = append(args, "-f", container, "-y", out)
	if msg, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	return out
}

// recorder keeps copies of the frames a source emits.
type recorder struct {
	mu     sync.Mutex
	frames []Frame
}

func (r *recorder) emit(f Frame) {
	f.Data = bytes.Clone(f.Data)
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
}

func (r *recorder) video() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	var v []Frame
	for _, f := range r.frames {
		if f.Codec == H264 {
			v = append(v, f)
		}
	}
	return v
}

func (r *recorder) count(codec Codec) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, f := range r.frames {
		if f.Codec == codec {
			n++
		}
	}
	return n
}

// run starts src.Run in the background and returns a function that stops it and
// returns Run's error.
func run(t testing.TB, src Source, emit func(Frame)) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, emit) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10 s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// checkKeyframes checks that every keyframe is an IDR access unit with an SPS and a
// PPS in front of the IDR slice, and that non-keyframes have no IDR slice.
func checkKeyframes(t *testing.T, frames []Frame) {
	t.Helper()
	for i, f := range frames {
		var sps, pps, idr bool
		for _, nal := range h264.SplitNALUs(f.Data) {
			switch h264.TypeOf(nal) {
			case h264.NALSPS:
				sps = true
			case h264.NALPPS:
				pps = true
			case h264.NALIDR:
				if !sps || !pps {
					t.Fatalf("frame %d: IDR slice before SPS and PPS", i)
				}
				idr = true
			}
		}
		if idr != f.Keyframe {
			t.Fatalf("frame %d: Keyframe=%v but IDR slice present=%v", i, f.Keyframe, idr)
		}
	}
}
