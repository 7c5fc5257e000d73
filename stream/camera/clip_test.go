package camera

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestEmbeddedClip checks what the demo relies on: a Constrained Baseline clip that
// Chromium decodes, 10 s at 30 fps with an IDR every 2 s, small enough to embed.
func TestEmbeddedClip(t *testing.T) {
	aus := clipAccessUnits()
	if len(aus) != 300 {
		t.Fatalf("%d pictures, want 300", len(aus))
	}
	for i, au := range aus {
		if au.IDR != (i%60 == 0) || au.BFrame {
			t.Fatalf("picture %d: IDR=%v B=%v; want an IDR every 60 and no B", i, au.IDR, au.BFrame)
		}
	}
	st := NewClipSource().Status()
	if st.Profile != "Constrained Baseline 3.1" || st.ProfileLevelID != "42c01f" || st.Width != 640 || st.Height != 360 ||
		!st.Forwardable || len(st.Problems) != 0 {
		t.Errorf("status %+v", st)
	}
	if len(clipH264)+len(clipOpus) > 512<<10 {
		t.Errorf("clip is %d bytes; keep the binary small", len(clipH264)+len(clipOpus))
	}
	if st.Audio != Opus {
		t.Errorf("clip audio %q, want Opus", st.Audio)
	}
	events, period := NewClipSource().timeline()
	var video, audio int
	for i, ev := range events {
		if i > 0 && ev.at < events[i-1].at {
			t.Fatalf("event %d at %s comes after one at %s", i, ev.at, events[i-1].at)
		}
		switch ev.frame.Codec {
		case H264:
			video++
		case Opus:
			audio++
		}
	}
	if period != 300*(time.Second/30) || video != 300 || audio != 500 {
		t.Errorf("one pass of %s: %d pictures and %d audio packets, want 10 s, 300 and 500", period, video, audio)
	}
}

// TestEmbeddedClipPlaysSoundWithPicture plays the embedded clip for a third of a
// second and expects 20 ms audio packets alongside the pictures, in time order.
func TestEmbeddedClipPlaysSoundWithPicture(t *testing.T) {
	var rec recorder
	stop := run(t, NewClipSource(), rec.emit)
	wait.For(t, 10*time.Second, "10 pictures", func() bool { return rec.count(H264) >= 10 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var videoTime, audioTime time.Duration
	for _, f := range rec.frames {
		switch f.Codec {
		case H264:
			videoTime += f.Duration
		case Opus:
			audioTime += f.Duration
			if f.Duration != 20*time.Millisecond || len(f.Data) == 0 {
				t.Fatalf("audio packet of %d bytes lasting %s", len(f.Data), f.Duration)
			}
		}
	}
	// Sound and picture played for the same time, give or take a packet and a frame.
	if d := audioTime - videoTime; d < -60*time.Millisecond || d > 60*time.Millisecond {
		t.Errorf("%s of sound beside %s of picture", audioTime, videoTime)
	}
}

// TestEmbeddedClipDecodes has ffmpeg decode the embedded clip whole and count its
// pictures, so that a clip that only our own splitter accepts fails.
func TestEmbeddedClipDecodes(t *testing.T) {
	t.Parallel()
	ffprobe := peers.Need(t, "ffprobe")[0]
	cmd := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v", "-show_entries",
		"stream=nb_read_frames,profile,width,height", "-of", "csv=p=0", "-f", "h264", "-")
	cmd.Stdin = bytes.NewReader(clipH264)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "Constrained Baseline,640,360,300" {
		t.Errorf("ffprobe says %q", got)
	}
}

// TestClipPacesAndLoops plays a one-second clip made by ffmpeg and expects its 30
// pictures one frame apart in real time, then the first again: a seamless loop.
func TestClipPacesAndLoops(t *testing.T) {
	t.Parallel()
	path := encode(t, "one.h264", "320x180", 1, 15, "baseline", "h264")
	src, err := NewClipFileSource(path, 30)
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	stop := run(t, src, rec.emit)
	wait.For(t, 10*time.Second, "45 frames of the clip", func() bool { return rec.count(H264) >= 45 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	frames := rec.video()
	checkKeyframes(t, frames)
	for i, f := range frames[:45] {
		if f.Duration != time.Second/30 {
			t.Fatalf("frame %d lasts %s", i, f.Duration)
		}
		if f.Keyframe != (i%15 == 0) {
			t.Fatalf("frame %d: keyframe=%v, want one every 15", i, f.Keyframe)
		}
		if i >= 30 && !bytes.Equal(f.Data, frames[i-30].Data) {
			t.Fatalf("frame %d is not frame %d of the first pass", i, i-30)
		}
	}
	// 44 frame gaps at 1/30 s is 1.47 s; a loaded machine may be late, never early.
	if span := frames[44].Received.Sub(frames[0].Received); span < 1400*time.Millisecond || span > 6*time.Second {
		t.Errorf("45 frames took %s, want about 1.47 s", span)
	}
	if st := src.Status(); st.Frames < 45 || st.Keyframes < 3 || !strings.HasPrefix(st.Profile, "Constrained Baseline") {
		t.Errorf("status %+v", st)
	}
}
