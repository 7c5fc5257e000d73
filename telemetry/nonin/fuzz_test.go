package nonin

import (
	"testing"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/telemetrytest"
)

// FuzzDecoder feeds arbitrary bytes in arbitrary chunks: the decoder must never panic,
// never emit more pleth samples than whole frames fit in the input, and must account for
// every byte as either part of a frame or skipped (save the tail it still holds).
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0x01, 0x81, 0x01, 0x00, 0x83, 0x01, 0x80, 0x01, 0x48, 0xCA}, uint8(2), uint8(3))
	var b []byte
	for i := 0; i < 30; i++ {
		b = AppendFrame(b, Frame{Status: StatusBit7 | uint8(i%25/24), Pleth: uint16(i * 77), Float: uint8(i)}, Format7)
	}
	f.Add(b, uint8(7), uint8(5))
	f.Add(append([]byte{0xff, 0x80, 0x80}, b...), uint8(7), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, format uint8, chunk uint8) {
		fm := Format7
		if format%2 == 0 {
			fm = Format2
		}
		c := int(chunk%16) + 1
		var sink telemetrytest.Sink
		dec := NewDecoder(fm, nil)
		for i := 0; i < len(data); i += c {
			dec.Feed(data[i:min(i+c, len(data))], time.Unix(0, 0), &sink)
		}
		frames, skipped := sink.Counts()
		if n := len(sink.Samples(telemetry.MDC_PULS_OXIM_PLETH)); n != frames || n > len(data)/FrameLen {
			t.Fatalf("%d samples, %d frames from %d bytes", n, frames, len(data))
		}
		if held := len(data) - frames*FrameLen - skipped; held < 0 || held >= 2*FrameLen {
			t.Fatalf("bytes unaccounted: %d frames, %d skipped, %d in", frames, skipped, len(data))
		}
	})
}

// FuzzParseFrame checks that a frame that parses re-encodes to the same bytes.
func FuzzParseFrame(f *testing.F) {
	f.Add([]byte{0x01, 0x81, 0x01, 0x00, 0x83}, true)
	f.Add([]byte{0x81, 0x12, 0x34, 0x48, 0x0f}, false)
	f.Fuzz(func(t *testing.T, b []byte, two bool) {
		fm := Format7
		if two {
			fm = Format2
		}
		fr, err := ParseFrame(b, fm)
		if err != nil {
			return
		}
		if got := AppendFrame(nil, fr, fm); string(got) != string(b[:FrameLen]) {
			t.Fatalf("re-encoded % x, want % x", got, b[:FrameLen])
		}
	})
}
