package camera

import (
	"testing"

	"lifeline/stream/h264"
)

// TestStatusOfProfiles checks what the status says of each profile, against what
// TestWhatChromiumDecodes found: Baseline and Main play, High plays in Chromium with
// a warning, High 10 does not play.
func TestStatusOfProfiles(t *testing.T) {
	for _, c := range []struct {
		sps         h264.SPS
		forwardable bool
		problems    int
	}{
		{h264.SPS{ProfileIDC: 66, Constraints: 0xe0, LevelIDC: 31}, true, 0},
		{h264.SPS{ProfileIDC: 77, Constraints: 0x40, LevelIDC: 40}, true, 0},
		{h264.SPS{ProfileIDC: 100, LevelIDC: 40}, true, 1},
		{h264.SPS{ProfileIDC: 110, LevelIDC: 40}, false, 1},
	} {
		st := Status{Forwardable: true}
		st.noteSPS(c.sps)
		if st.Forwardable != c.forwardable || len(st.Problems) != c.problems {
			t.Errorf("%s: forwardable=%v, problems %q", c.sps.Profile(), st.Forwardable, st.Problems)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"rtsp://admin:pw@cam/stream": "rtsp://admin:xxxxx@cam/stream",
		"rtsp://cam/stream":          "rtsp://cam/stream",
		"rtsp://admin:pw@cam/%zz":    "rtsp://xxxxx@cam/%zz",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
