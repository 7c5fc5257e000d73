package protocols

import (
	"os"
	"testing"
	"time"
)

// FuzzProbe is auto-detection under hostile bytes: whatever a port delivers, every
// driver's Probe answers, quickly, and the same way twice (a probe holds no state
// between calls, so a detection cannot depend on what an earlier port said).
func FuzzProbe(f *testing.F) {
	for _, path := range []string{
		"../hl7/testdata/ge_b40_pcd01.hl7", "../datex/testdata/s5_phdb_capture.raw",
		"../intellivue/testdata/messages.txt", "../nonin/testdata/pufferfish_oem3_format2.hex",
	} {
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b[:min(len(b), 4096)])
		}
	}
	f.Add([]byte("\x0bMSH|^~\\&|\x1c\r"))
	f.Add([]byte{0x7e, 0x7e, 0x7e})
	f.Add([]byte{0x01, 0x80, 0x7f})
	drivers := Drivers(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range drivers {
			start := time.Now()
			first := d.Probe(data)
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Fatalf("%s: Probe of %d bytes took %v", d.Protocol(), len(data), took)
			}
			if d.Probe(data) != first {
				t.Fatalf("%s: Probe answers differently for the same bytes", d.Protocol())
			}
		}
	})
}
