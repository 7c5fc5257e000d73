package h264

import (
	"bytes"
	"testing"
)

// FuzzDepacketizer feeds RTP packets, each after a two-byte length as in the
// captures of testdata, and checks what comes out: whole access units within the
// bounds, each IDR one with an SPS and a PPS in front.
func FuzzDepacketizer(f *testing.F) {
	f.Fuzz(func(t *testing.T, capture []byte) {
		pkts, _ := parseCapture(capture)
		d := NewDepacketizer()
		for _, p := range pkts {
			_ = d.Push(p, func(au AccessUnit) {
				if len(au.Data) == 0 || len(au.Data) > MaxAccessUnitSize+2*maxParameterSetSize+8 {
					t.Fatalf("access unit of %d bytes", len(au.Data))
				}
				if !bytes.HasPrefix(au.Data, startCode) {
					t.Fatalf("access unit does not start with a start code: %x", au.Data[:min(8, len(au.Data))])
				}
				c := au.inspect()
				if !c.vcl {
					t.Fatal("access unit without a slice")
				}
				if au.IDR && (!c.sps || !c.pps) {
					t.Fatal("IDR access unit without SPS and PPS")
				}
			})
		}
		st := d.Stats()
		if st.AccessUnits+st.Dropped > st.Packets {
			t.Fatalf("more pictures than packets: %+v", st)
		}
	})
}

// FuzzParseSPS checks that any SPS that parses gives a picture size within bounds.
func FuzzParseSPS(f *testing.F) {
	f.Fuzz(func(t *testing.T, nal []byte) {
		s, err := ParseSPS(nal)
		if err != nil {
			return
		}
		if s.Width <= 0 || s.Height <= 0 || s.Width*s.Height > maxMBs*256*2 {
			t.Fatalf("SPS gives a %dx%d picture", s.Width, s.Height)
		}
		_ = s.Profile() + s.Level() + s.ProfileLevelID()
	})
}

// FuzzSplitAccessUnits checks that splitting a byte stream neither panics nor loses or
// invents NAL units.
func FuzzSplitAccessUnits(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte) {
		nalus := len(SplitNALUs(stream))
		got := 0
		for _, au := range SplitAccessUnits(stream, 3000) {
			got += len(au.NALUs())
		}
		if got > nalus {
			t.Fatalf("access units hold %d NAL units, the stream %d", got, nalus)
		}
	})
}
