package h264

import (
	"encoding/hex"
	"testing"
	"time"
)

// SPSs written by ffmpeg's libx264 (`ffmpeg -f lavfi -i testsrc2=size=WxH -frames:v 1
// -c:v libx264 -profile:v P -f h264`), the first with interlaced coding
// (-flags +ildct+ilme -x264-params interlaced=1).
func TestParseSPSFromLibx264(t *testing.T) {
	cases := []struct {
		name, hex       string
		profile         string
		plid            string
		width, height   int
		frameMBsOnly    bool
		constrainedBase bool
	}{
		{"1080i main", "674d4028eca03c0227ef0110000003001000000303c1f162d960", "Main", "4d4028", 1920, 1080, false, false},
		{"1080p high", "67640028acd940780227e5c044000003000400000300f03c60c658", "High", "640028", 1920, 1080, true, false},
		{"720p baseline", "6742c01fd9005005bb0110000003001000000303c0f1832480", "Constrained Baseline", "42c01f", 1280, 720, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nal, err := hex.DecodeString(c.hex)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ParseSPS(nal)
			if err != nil {
				t.Fatalf("ParseSPS: %v", err)
			}
			if s.Profile() != c.profile || s.ProfileLevelID() != c.plid || s.Width != c.width || s.Height != c.height ||
				s.FrameMBsOnly != c.frameMBsOnly || s.ConstrainedBaseline() != c.constrainedBase {
				t.Errorf("got %s %s %dx%d frame_mbs_only=%v constrained=%v, want %s %s %dx%d %v %v",
					s.Profile(), s.ProfileLevelID(), s.Width, s.Height, s.FrameMBsOnly, s.ConstrainedBaseline(),
					c.profile, c.plid, c.width, c.height, c.frameMBsOnly, c.constrainedBase)
			}
		})
	}
}

func TestParseSPSRejects(t *testing.T) {
	good, _ := hex.DecodeString("6742c01fd9005005bb0110000003001000000303c0f1832480")
	cases := map[string][]byte{
		"empty":     nil,
		"PPS":       {0x68, 0xce, 0x3c, 0x80},
		"truncated": good[:6],
		// A width of 2^20 macroblocks: ue(v) 0 0...0 1 with 20 zeros.
		"huge": {0x67, 0x42, 0xc0, 0x1f, 0x88, 0x80, 0x00, 0x00, 0x10, 0x00, 0x00},
		// 40 zero bits: an Exp-Golomb code longer than 32 bits.
		"long golomb": {0x67, 0x42, 0xc0, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80},
	}
	for name, nal := range cases {
		if s, err := ParseSPS(nal); err == nil {
			t.Errorf("%s: parsed as %+v, want an error", name, s)
		}
	}
}

func TestLevel(t *testing.T) {
	for _, c := range []struct {
		s    SPS
		want string
	}{
		{SPS{ProfileIDC: 66, Constraints: 0xe0, LevelIDC: 31}, "3.1"},
		{SPS{ProfileIDC: 100, LevelIDC: 40}, "4.0"},
		{SPS{ProfileIDC: 66, Constraints: 0x10, LevelIDC: 11}, "1b"},
	} {
		if got := c.s.Level(); got != c.want {
			t.Errorf("level of %+v = %q, want %q", c.s, got, c.want)
		}
	}
}

// TestSPSFrameDuration reads the VUI timing of libx264's SPSs: 30 fps, written as a
// time scale of 60 ticks a second, two ticks a frame.
func TestSPSFrameDuration(t *testing.T) {
	for _, h := range []string{
		"6764000dacd941419f9f0110000003001000000303c0f1429960", // the RTP capture's sprop
		"6742c01fd9005005bb0110000003001000000303c0f1832480",   // 720p Baseline
	} {
		nal, _ := hex.DecodeString(h)
		s, err := ParseSPS(nal)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := s.FrameDuration(); !ok || d != time.Second/30 {
			t.Errorf("%s: frame duration %s, %v (ticks %d/%d); want 33.3 ms", h, d, ok, s.NumUnitsInTick, s.TimeScale)
		}
	}
	if d, ok := (SPS{NumUnitsInTick: 1, TimeScale: 1}).FrameDuration(); ok {
		t.Errorf("a 2 s frame accepted: %s", d)
	}
}
