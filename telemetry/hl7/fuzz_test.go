package hl7

import (
	"testing"
	"time"
)

// FuzzDeframer checks that MLLP deframing never panics, never returns a message holding
// a framing byte, and accounts for every input byte.
func FuzzDeframer(f *testing.F) {
	f.Add([]byte("\x0bMSH|^~\\&|A\x1c\x0d"), uint8(3))
	f.Add([]byte("junk\x0bMSH|B\x0bMSH|C\x1c"), uint8(1))
	f.Add([]byte("\x1c\x0d\x0b\x1c\x0b"), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		c := int(chunk%32) + 1
		d := Deframer{Max: 64}
		for i := 0; i < len(data); i += c {
			msgs, skipped, _ := d.Feed(data[i:min(i+c, len(data))])
			if skipped < 0 {
				t.Fatal("negative skip count")
			}
			for _, m := range msgs {
				for _, b := range m {
					if b == StartBlock || b == EndBlock {
						t.Fatalf("framing byte inside message %q", m)
					}
				}
				if len(m) > 64 {
					t.Fatalf("message of %d bytes over the limit", len(m))
				}
			}
		}
	})
}

// FuzzParse feeds arbitrary messages to the parser and the PCD-01 mapping: errors are
// fine, panics and invented values are not.
func FuzzParse(f *testing.F) {
	f.Add([]byte("MSH|^~\\&|A|B|||20260101||ORU^R01|1|P|2.6\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|97|262688^MDC_DIM_PERCENT^MDC\r"))
	f.Add([]byte("MSH|^~\\&|A|B|||20260101||ORU^R01|1|P|2.6\rOBX|1|NA|131330^MDC_ECG_ELEC_POTL_II^MDC|1.1|1^2^x|266418^^MDC\rOBX|2|NM|0^MDC_ATTR_SAMP_RATE^MDC|1.1.1|500\r"))
	f.Add([]byte("MSH|^~\\&|A|B|||2026+0800||ORU^R40|1|P\rOBX|1|ST|0^MDC_EVT_ALARM^MDC|1|\\X41\\\\E\\|||PH\rOBX|2|ST|68481^MDC_ATTR_EVENT_PHASE^MDC|1.1|end\r"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			return
		}
		if m.MSH().Name() != "MSH" {
			t.Fatal("first segment is not MSH")
		}
		res := Decode(m, time.Unix(0, 0), time.UTC)
		if res.Ignored < 0 || len(res.Events) > len(raw) {
			t.Fatalf("%d events from %d bytes", len(res.Events), len(raw))
		}
		_ = EncodeACK(m, "AA", "", time.Unix(0, 0), "1")
	})
}
