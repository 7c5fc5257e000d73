package h264

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"lifeline/internal/peers"
)

func TestSplitNALUs(t *testing.T) {
	stream := []byte{0xff, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0}
	got := SplitNALUs(stream)
	want := [][]byte{{0x09, 0xf0}, {0x67, 1, 2}, {0x68, 3}}
	if len(got) != len(want) {
		t.Fatalf("got %d NAL units %x, want %x", len(got), got, want)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("NAL unit %d = %x, want %x", i, got[i], want[i])
		}
	}
	if n := SplitNALUs([]byte{1, 2, 3}); len(n) != 0 {
		t.Errorf("bytes without a start code gave %x", n)
	}
}

// clipFacts are what libx264 was told to write into the fixtures (see
// testdata/README.md): 60 pictures, an IDR every 30.
type clipFacts struct {
	file       string
	pictures   int
	idrEvery   int
	slices     int
	bFrames    bool
	profileIDC uint8
}

var fixtures = []clipFacts{
	{"testdata/baseline.h264", 60, 30, 1, false, 66},
	{"testdata/high_bframes_4slices.h264", 60, 30, 4, true, 100},
}

func TestSplitAccessUnitsFFmpegOutput(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.file, func(t *testing.T) {
			data, err := os.ReadFile(f.file)
			if err != nil {
				t.Fatal(err)
			}
			aus := SplitAccessUnits(data, 3000)
			if len(aus) != f.pictures {
				t.Fatalf("%d access units, want %d", len(aus), f.pictures)
			}
			sawB := false
			for i, au := range aus {
				if au.IDR != (i%f.idrEvery == 0) {
					t.Errorf("access unit %d: IDR=%v", i, au.IDR)
				}
				if au.Timestamp != uint32(i*3000) {
					t.Errorf("access unit %d: timestamp %d", i, au.Timestamp)
				}
				slices := 0
				for _, nal := range au.NALUs() {
					if TypeOf(nal).IsVCL() {
						slices++
					}
				}
				if slices != f.slices {
					t.Errorf("access unit %d: %d slices, want %d", i, slices, f.slices)
				}
				sawB = sawB || au.BFrame
			}
			if sawB != f.bFrames {
				t.Errorf("B frames seen: %v, want %v", sawB, f.bFrames)
			}
			var sps SPS
			err = errors.New("no SPS in the first access unit")
			for _, nal := range aus[0].NALUs() {
				if TypeOf(nal) == NALSPS {
					sps, err = ParseSPS(nal)
				}
			}
			if err != nil || sps.ProfileIDC != f.profileIDC || sps.Width != 320 || sps.Height != 180 {
				t.Errorf("first NAL unit: SPS %+v, %v; want profile %d 320x180", sps, err, f.profileIDC)
			}
		})
	}
}

// TestSplitAccessUnitsAgreesWithFFprobe checks the splitter against ffprobe's own
// count of pictures, keyframes and B pictures in the same file.
func TestSplitAccessUnitsAgreesWithFFprobe(t *testing.T) {
	ffprobe := peers.Need(t, "ffprobe")[0]
	for _, f := range fixtures {
		out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v", "-show_entries",
			"frame=key_frame,pict_type", "-of", "csv=p=0", f.file).Output()
		if err != nil {
			t.Fatalf("ffprobe %s: %v", f.file, err)
		}
		var frames, keys, bs int
		for _, line := range strings.Fields(string(out)) {
			frames++
			if strings.HasPrefix(line, "1") {
				keys++
			}
			if strings.Contains(line, "B") {
				bs++
			}
		}
		data, _ := os.ReadFile(f.file)
		var gotKeys, gotBs int
		aus := SplitAccessUnits(data, 3000)
		for _, au := range aus {
			if au.IDR {
				gotKeys++
			}
			if au.BFrame {
				gotBs++
			}
		}
		if len(aus) != frames || gotKeys != keys || gotBs != bs {
			t.Errorf("%s: split %d pictures, %d IDR, %d B; ffprobe %d, %d, %d", f.file, len(aus), gotKeys, gotBs, frames, keys, bs)
		}
	}
}
