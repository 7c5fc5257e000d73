package camera

import (
	"testing"
	"time"
)

// TestDurationWithBFramesWithoutVUI times pictures of a B-frame stream whose SPS has
// no frame rate: presentation timestamps in decoding order (I0 P3 B1 B2 P6 B4 B5 ...,
// in frames of 3000 ticks). Once a forward gap of one frame has been seen, every
// picture lasts one frame.
func TestDurationWithBFramesWithoutVUI(t *testing.T) {
	v := newRTPVideo(newStatusBox("rtp://test"), nil, nil)
	v.sawB = true
	order := []uint32{0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11}
	var total time.Duration
	for i, frame := range order {
		d := v.duration(1_000_000 + frame*3000)
		if i >= 4 && d != time.Second/30 {
			t.Errorf("picture %d (frame %d) lasts %s, want 33.3 ms", i, frame, d)
		}
		total += d
	}
	if total > time.Duration(len(order)+4)*time.Second/30 {
		t.Errorf("%d pictures last %s", len(order), total)
	}
}

// TestDurationFollowsGapsWithoutBFrames expects a stream without B-frames to be timed
// by its gaps, so that a camera that drops to 15 fps in the dark is followed.
func TestDurationFollowsGapsWithoutBFrames(t *testing.T) {
	v := newRTPVideo(newStatusBox("rtp://test"), nil, nil)
	want := []time.Duration{time.Second / 30, time.Second / 30, time.Second / 15, time.Second / 15, time.Second / 30}
	ts := []uint32{0, 3000, 9000, 15000, 18000}
	for i := range ts {
		if d := v.duration(ts[i]); d != want[i] {
			t.Errorf("picture %d lasts %s, want %s", i, d, want[i])
		}
	}
}
