package camera

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/internal/wait"
	"lifeline/stream/h264"
	"lifeline/stream/rtsp"
	"lifeline/stream/rtsp/rtsptest"
)

// width returns the picture width of a keyframe's SPS, or 0.
func width(f Frame) int {
	for _, nal := range h264.SplitNALUs(f.Data) {
		if h264.TypeOf(nal) == h264.NALSPS {
			if sps, err := h264.ParseSPS(nal); err == nil {
				return sps.Width
			}
		}
	}
	return 0
}

// TestCameraSwitchesAtKeyframe plays a 640-wide main stream and a 320-wide sub stream
// (ffmpeg clips, an IDR every half second) and switches back and forth: each switch
// must begin with a keyframe of the other stream, and no picture of the other stream
// may come before it.
func TestCameraSwitchesAtKeyframe(t *testing.T) {
	t.Parallel()
	mainClip, err := NewClipFileSource(encode(t, "main.h264", "640x360", 1, 15, "baseline", "h264"), 30)
	if err != nil {
		t.Fatal(err)
	}
	subClip, err := NewClipFileSource(encode(t, "sub.h264", "320x180", 1, 15, "baseline", "h264"), 30)
	if err != nil {
		t.Fatal(err)
	}
	cam := NewCamera(mainClip, subClip)
	var mu sync.Mutex
	var widths []int // the stream of each frame, known from the last keyframe
	var keys []bool
	current := 0
	stop := run(t, cam, func(f Frame) {
		mu.Lock()
		defer mu.Unlock()
		if f.Keyframe {
			current = width(f)
		}
		widths = append(widths, current)
		keys = append(keys, f.Keyframe)
	})
	frames := func() int { mu.Lock(); defer mu.Unlock(); return len(widths) }
	wait.For(t, 10*time.Second, "main stream frames", func() bool { return frames() >= 10 })
	cam.UseSub(true)
	wait.For(t, 10*time.Second, "the sub stream", func() bool { return cam.Status().Stream == "sub" })
	n := frames()
	wait.For(t, 10*time.Second, "sub stream frames", func() bool { return frames() >= n+10 })
	cam.UseSub(false)
	wait.For(t, 10*time.Second, "the main stream again", func() bool { return cam.Status().Stream == "main" })
	n = frames()
	wait.For(t, 10*time.Second, "main stream frames again", func() bool { return frames() >= n+5 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if widths[0] != 640 {
		t.Fatalf("first frame from a %d-wide stream, want main", widths[0])
	}
	switches := 0
	for i := 1; i < len(widths); i++ {
		if widths[i] != widths[i-1] {
			switches++
			if !keys[i] {
				t.Fatalf("frame %d switches stream without a keyframe", i)
			}
		}
	}
	if switches != 2 {
		t.Errorf("%d switches, want 2 (to sub and back): %v", switches, widths)
	}
}

// TestCameraSubFailureKeepsMain asks for a sub stream whose camera does not answer:
// the main stream must play on and the status must say why the sub did not.
func TestCameraSubFailureKeepsMain(t *testing.T) {
	t.Parallel()
	dead := "rtsp://127.0.0.1:1/sub" // nothing listens on port 1 of loopback
	cam := NewCamera(NewClipSource(), NewRTSPSource(dead, rtsp.Config{DialTimeout: time.Second}))
	var rec recorder
	run(t, cam, rec.emit)
	cam.UseSub(true)
	wait.For(t, 10*time.Second, "the sub stream's failure in the status", func() bool {
		return strings.Contains(cam.Status().LastError, "sub stream")
	})
	n := rec.count(H264)
	wait.For(t, 10*time.Second, "main frames after the failure", func() bool { return rec.count(H264) >= n+5 })
	if st := cam.Status(); st.Stream != "main" {
		t.Errorf("status %+v", st)
	}
}

// TestCameraMainFailureEndsRun expects the main stream's error from Run, for the
// caller's back-off.
func TestCameraMainFailureEndsRun(t *testing.T) {
	cam := NewCamera(NewRTPSource("127.0.0.1:0", 100*time.Millisecond), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cam.Run(ctx, func(Frame) {})
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no RTP") {
		t.Fatalf("Run: %v, want the RTP source's silence", err)
	}
}

// profileOf returns the profile_idc of a keyframe's SPS, or 0.
func profileOf(f Frame) uint8 {
	for _, nal := range h264.SplitNALUs(f.Data) {
		if h264.TypeOf(nal) == h264.NALSPS {
			if sps, err := h264.ParseSPS(nal); err == nil {
				return sps.ProfileIDC
			}
		}
	}
	return 0
}

// TestCameraSwitchesBetweenRTSPStreams switches a camera's main stream (Baseline) to
// its sub stream (High, another RTSP session) and expects the switch at the sub's
// IDR, the main session torn down, and the pictures going on meanwhile.
func TestCameraSwitchesBetweenRTSPStreams(t *testing.T) {
	mainSrv := testCamera(t, rtsptest.Config{})
	subSrv := testCamera(t, rtsptest.Config{AccessUnits: fixture(t, "high_bframes_4slices.h264")})
	cam := NewCamera(NewRTSPSource(mainSrv.URL, rtsp.Config{}), NewRTSPSource(subSrv.URL, rtsp.Config{}))
	var mu sync.Mutex
	var profiles []uint8
	current := uint8(0)
	run(t, cam, func(f Frame) {
		mu.Lock()
		defer mu.Unlock()
		if f.Keyframe {
			current = profileOf(f)
		}
		profiles = append(profiles, current)
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(profiles) }
	wait.For(t, 10*time.Second, "main stream frames", func() bool { return count() >= 20 })
	cam.UseSub(true)
	wait.For(t, 10*time.Second, "the sub stream", func() bool { return cam.Status().Stream == "sub" })
	wait.For(t, 10*time.Second, "TEARDOWN of the main stream", func() bool { return slices.Contains(mainSrv.Requests(), "TEARDOWN") })
	n := count()
	wait.For(t, 10*time.Second, "sub stream frames", func() bool { return count() >= n+20 })
	mu.Lock()
	defer mu.Unlock()
	if profiles[0] != 66 || profiles[len(profiles)-1] != 100 {
		t.Fatalf("profiles from %d to %d, want Baseline (66) to High (100)", profiles[0], profiles[len(profiles)-1])
	}
	if st := cam.Status(); st.Stream != "sub" || !st.BFrames {
		t.Errorf("status %+v", st)
	}
}

// TestCameraManySwitchRequests toggles the stream asked for many times, faster than
// keyframes come, and expects no deadlock: pictures keep coming, every stream change
// is at a keyframe, and Run ends when asked.
func TestCameraManySwitchRequests(t *testing.T) {
	t.Parallel()
	mainClip, err := NewClipFileSource(encode(t, "main.h264", "640x360", 1, 10, "baseline", "h264"), 30)
	if err != nil {
		t.Fatal(err)
	}
	subClip, err := NewClipFileSource(encode(t, "sub.h264", "320x180", 1, 10, "baseline", "h264"), 30)
	if err != nil {
		t.Fatal(err)
	}
	cam := NewCamera(mainClip, subClip)
	var mu sync.Mutex
	var widths []int
	var keys []bool
	current := 0
	stop := run(t, cam, func(f Frame) {
		mu.Lock()
		defer mu.Unlock()
		if f.Keyframe {
			current = width(f)
		}
		widths = append(widths, current)
		keys = append(keys, f.Keyframe)
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(widths) }
	for i := range 200 {
		cam.UseSub(i%2 == 0)
		if i%20 == 0 {
			n := count()
			wait.For(t, 10*time.Second, "pictures while switching", func() bool { return count() > n })
		}
	}
	cam.UseSub(true)
	wait.For(t, 10*time.Second, "the sub stream at last", func() bool { return cam.Status().Stream == "sub" })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(widths); i++ {
		if widths[i] != widths[i-1] && !keys[i] {
			t.Fatalf("frame %d changes stream without a keyframe", i)
		}
	}
}

// TestCameraFallsBackWhenSubFails forwards a sub stream whose RTSP camera closes the
// connection mid-stream, and expects the main stream back at once, not an error.
func TestCameraFallsBackWhenSubFails(t *testing.T) {
	t.Parallel()
	subSrv := testCamera(t, rtsptest.Config{Fault: rtsptest.CloseMidStream, StopAfter: 150})
	cam := NewCamera(NewClipSource(), NewRTSPSource(subSrv.URL, rtsp.Config{}))
	var rec recorder
	stop := run(t, cam, rec.emit)
	cam.UseSub(true)
	wait.For(t, 10*time.Second, "the sub stream", func() bool { return cam.Status().Stream == "sub" })
	wait.For(t, 10*time.Second, "the main stream after the sub failed", func() bool {
		st := cam.Status()
		return st.Stream == "main" && strings.Contains(st.LastError, "sub stream")
	})
	n := rec.count(H264)
	wait.For(t, 10*time.Second, "main pictures after the fall-back", func() bool { return rec.count(H264) >= n+5 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkKeyframes(t, rec.video())
}
