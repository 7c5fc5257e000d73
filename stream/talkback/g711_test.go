package talkback

import (
	"math"
	"testing"
)

// TestULawReference checks the decoder against values of the G.711 µ-law table
// (ITU-T G.711 Table 2a, as 14-bit values scaled to 16 bits): 0xFF and 0x7F are zero,
// 0x80 and 0x00 the extremes ±32124, 0xF0 is 0x7F's neighbour segment start.
func TestULawReference(t *testing.T) {
	for _, c := range []struct {
		code byte
		want int16
	}{
		{0xFF, 0}, {0x7F, 0}, {0x80, 32124}, {0x00, -32124}, {0xFE, 8}, {0x7E, -8}, {0xEF, 132}, {0xDF, 396}, {0xCF, 924},
	} {
		if got := DecodeULaw(nil, []byte{c.code})[0]; got != c.want {
			t.Errorf("µ-law 0x%02X: %d, want %d", c.code, got, c.want)
		}
	}
}

// TestULawRoundTrip: every code decodes to a value that encodes back to the same code
// (except negative zero, which encodes as positive), and a sine survives within the
// quantisation step of its segment.
func TestULawRoundTrip(t *testing.T) {
	for i := 0; i < 256; i++ {
		v := DecodeULaw(nil, []byte{byte(i)})
		back := EncodeULaw(nil, v)[0]
		if back != byte(i) && !(v[0] == 0) {
			t.Errorf("code 0x%02X → %d → 0x%02X", i, v[0], back)
		}
	}
	for k := 0; k < 800; k++ {
		s := int16(20000 * math.Sin(2*math.Pi*440*float64(k)/8000))
		got := DecodeULaw(nil, EncodeULaw(nil, []int16{s}))[0]
		if d := math.Abs(float64(got - s)); d > 1024 {
			t.Fatalf("sample %d: %d back as %d", k, s, got)
		}
	}
}
