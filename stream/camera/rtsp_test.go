package camera

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"lifeline/internal/wait"
	"lifeline/stream/h264"
	"lifeline/stream/rtsp"
	"lifeline/stream/rtsp/rtsptest"
)

// fixture returns the access units of one of stream/h264's committed libx264 clips.
func fixture(t *testing.T, name string) [][]byte {
	t.Helper()
	data, err := os.ReadFile("../h264/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var aus [][]byte
	for _, au := range h264.SplitAccessUnits(data, 3000) {
		aus = append(aus, au.Data)
	}
	return aus
}

func testCamera(t *testing.T, cfg rtsptest.Config) *rtsptest.Server {
	t.Helper()
	if cfg.AccessUnits == nil {
		cfg.AccessUnits = fixture(t, "baseline.h264")
	}
	if cfg.FrameDuration == 0 {
		cfg.FrameDuration = 10 * time.Millisecond
	}
	srv, err := rtsptest.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// TestRTSPSourceDigestCamera plays a Digest-protected camera with PCMU audio and
// expects H.264 frames with SPS/PPS before every IDR, durations from the camera's
// clock, the audio, the status of a camera a browser can show, and a PLI when asked.
func TestRTSPSourceDigestCamera(t *testing.T) {
	srv := testCamera(t, rtsptest.Config{Username: "crew", Password: "pw", Audio: true})
	url := strings.Replace(srv.URL, "rtsp://", "rtsp://crew:pw@", 1)
	src, err := Open(url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs := src.(*RTSPSource)
	var rec recorder
	stop := run(t, src, rec.emit)
	wait.For(t, 10*time.Second, "90 video frames and some audio", func() bool { return rec.count(H264) >= 90 && rec.count(PCMU) >= 5 })
	plis := func() int {
		n := 0
		for _, b := range srv.RTCP() {
			if pkts, err := rtcp.Unmarshal(b); err == nil {
				if _, ok := pkts[0].(*rtcp.PictureLossIndication); ok {
					n++
				}
			}
		}
		return n
	}
	// The source asked for a keyframe once at the start, while it waited for the
	// first IDR; RequestKeyframe must bring another PLI, at most a second later.
	before := plis()
	rs.RequestKeyframe()
	wait.For(t, 10*time.Second, "a PLI at the camera", func() bool { return plis() > before })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	frames := rec.video()
	checkKeyframes(t, frames)
	if !frames[0].Keyframe {
		t.Error("first frame is not a keyframe")
	}
	for i, f := range frames[1:] {
		if f.Duration != 10*time.Millisecond {
			t.Fatalf("frame %d lasts %s, want the camera's 10 ms", i+1, f.Duration)
		}
	}
	st := rs.Status()
	if st.Codec != H264 || st.Profile != "Constrained Baseline 1.3" || st.Width != 320 || st.Height != 180 || st.Audio != PCMU ||
		!st.Forwardable || len(st.Problems) != 0 || strings.Contains(st.URL, "pw") {
		t.Errorf("status %+v", st)
	}
}

// TestRTSPSourceSaysWhatCannotBeForwarded probes cameras that send what browsers
// refuse and expects the status to say so in words, instead of a black screen.
func TestRTSPSourceSaysWhatCannotBeForwarded(t *testing.T) {
	t.Run("H.265", func(t *testing.T) {
		srv := testCamera(t, rtsptest.Config{Codec: "H265"})
		st, err := Probe(t.Context(), NewRTSPSource(srv.URL, rtsp.Config{}), 10*time.Second)
		if !errors.Is(err, ErrNotForwardable) || st.Forwardable || st.Codec != H265 || !hasProblem(st, "H.265") {
			t.Errorf("Probe: %v, status %+v", err, st)
		}
	})
	t.Run("High profile with B-frames", func(t *testing.T) {
		srv := testCamera(t, rtsptest.Config{AccessUnits: fixture(t, "high_bframes_4slices.h264")})
		st, err := Probe(t.Context(), NewRTSPSource(srv.URL, rtsp.Config{}), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if st.Forwardable || !st.BFrames || !strings.HasPrefix(st.Profile, "High") || !hasProblem(st, "High profile") || !hasProblem(st, "B-frames") {
			t.Errorf("status %+v", st)
		}
	})
}

func hasProblem(st Status, words string) bool {
	for _, p := range st.Problems {
		if strings.Contains(p, words) {
			return true
		}
	}
	return false
}

// TestRTSPSourceCameraStopsMidStream expects Run to fail, soon and saying why, when
// the camera goes quiet, and the status to show it.
func TestRTSPSourceCameraStopsMidStream(t *testing.T) {
	srv := testCamera(t, rtsptest.Config{Fault: rtsptest.StopMidStream, StopAfter: 40})
	src := NewRTSPSource(srv.URL, rtsp.Config{MediaTimeout: 300 * time.Millisecond})
	var rec recorder
	err := src.Run(t.Context(), rec.emit)
	if err == nil || !strings.Contains(err.Error(), "sent nothing") {
		t.Fatalf("Run: %v, want the camera's silence named", err)
	}
	st := src.Status()
	if st.Connected || !strings.Contains(st.LastError, "sent nothing") || rec.count(H264) == 0 {
		t.Errorf("status %+v after %d frames", st, rec.count(H264))
	}
}
