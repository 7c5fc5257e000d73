package hl7

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"lifeline/telemetry"
)

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// twelveLead encodes one ORU^R01 with 1 s of the 12 ECG leads at rate, each sample
// at full float32 precision: the largest message a monitor sends.
func twelveLead(rate int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var waves []*telemetry.Wave
	for _, c := range telemetry.ECG12 {
		s := make([]float32, rate)
		for i := range s {
			s[i] = float32(rng.NormFloat64() * 1.234567)
		}
		waves = append(waves, &telemetry.Wave{Code: c, Unit: "mV", Rate: float64(rate), Samples: s, Start: time.Now()})
	}
	return EncodeORU(Header{SendingApp: "ECG", ControlID: "1", Time: time.Now(), AckType: "AL"}, nil, waves)
}

// TestTwelveLeadWaveformFitsTheLimits: the largest message a real monitor sends, 1 s
// of 12 leads at 500 Hz, is within MaxMessage and the shape limits, and decodes
// whole.
func TestTwelveLeadWaveformFitsTheLimits(t *testing.T) {
	msg := twelveLead(500)
	t.Logf("12-lead, 1 s at 500 Hz, full float32 precision: %d bytes (MaxMessage %d)", len(msg), MaxMessage)
	if len(msg) > MaxMessage {
		t.Fatalf("a 12-lead message of %d bytes is over MaxMessage %d", len(msg), MaxMessage)
	}
	m, err := parseBounded(msg)
	if err != nil {
		t.Fatal(err)
	}
	waves := 0
	for _, e := range Decode(m, time.Now(), time.UTC).Events {
		if w, ok := e.(*telemetry.Wave); ok && len(w.Samples) == 500 {
			waves++
		}
	}
	if waves != 12 {
		t.Fatalf("%d of 12 leads decoded", waves)
	}
}

// hostile builds a message of exactly size bytes: a valid header and then fill
// repeated, the shapes that cost the parser most per byte.
func hostile(size int, fill string) []byte {
	var b bytes.Buffer
	b.WriteString("MSH|^~\\&|A|B|||20260101||ORU^R01|1|P|2.6\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|")
	for b.Len() < size {
		b.WriteString(fill)
	}
	return b.Bytes()[:size]
}

// hostileFills are the fills hostile uses: every separator, escapes, and plain text.
var hostileFills = map[string]string{
	"fields": "|", "repetitions": "~", "components": "^", "segments": "ABC\r", "subcomponents": "&",
	"hex escapes": "\\X41414141\\", "escapes": "\\E\\", "text": "a",
}

// atLimits builds a message of size bytes with just under each limit's count of its
// separator (all of them when which is "all"), then pad: the most costly messages the
// limits admit.
func atLimits(size int, which, pad string) []byte {
	var b bytes.Buffer
	b.WriteString("MSH|^~\\&|A|B|||20260101||ORU^R01|1|P|2.6\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|")
	put := func(name, sep string, n int) {
		if which == name || which == "all" {
			b.WriteString(strings.Repeat(sep, n-32))
		}
	}
	put("segments", "OBX\r", MaxSegments)
	put("fields", "|", MaxFields)
	put("repetitions", "~", MaxRepetitions)
	put("components", "^", MaxComponents)
	for b.Len() < size {
		b.WriteString(pad)
	}
	return b.Bytes()[:size]
}

// TestParseAllocationBounded measures what parsing and decoding a hostile message of
// MaxMessage bytes allocates, shaped to cost the parser most, and holds it under
// 8 MiB. Before the shape limits, one such message of 1 MiB allocated 234 MiB.
func TestParseAllocationBounded(t *testing.T) {
	const budget = 8 << 20
	msgs := map[string][]byte{}
	for name, fill := range hostileFills {
		msgs[name] = hostile(MaxMessage, fill)
	}
	for _, which := range []string{"segments", "fields", "repetitions", "components", "all"} {
		msgs["under "+which] = atLimits(MaxMessage, which, "a")
	}
	msgs["under all, hex"] = atLimits(MaxMessage, "all", hostileFills["hex escapes"])
	for name, msg := range msgs {
		var err error
		got := allocated(func() {
			var m *Message
			if m, err = parseBounded(msg); err == nil {
				Decode(m, time.Now(), time.UTC)
			}
		})
		unbounded := allocated(func() {
			if m, err := Parse(msg); err == nil {
				Decode(m, time.Now(), time.UTC)
			}
		})
		t.Logf("%-18s %d bytes: %5.2f MiB allocated (%5.2f MiB without the shape limits), refused: %v",
			name, len(msg), float64(got)/(1<<20), float64(unbounded)/(1<<20), errors.Is(err, ErrTooComplex))
		if got > budget {
			t.Errorf("%s: parsing %d bytes allocated %d bytes, over the %d budget", name, len(msg), got, budget)
		}
	}
}

// TestDeframerDropsOversizedFrames: a frame over MaxMessage is discarded whole, the
// buffer does not keep growing with it, and the next frame is read.
func TestDeframerDropsOversizedFrames(t *testing.T) {
	var d Deframer
	huge := append([]byte{StartBlock}, bytes.Repeat([]byte("x"), 4*MaxMessage)...)
	huge = append(huge, EndBlock, CR)
	huge = Frame(huge, []byte("MSH|^~\\&|NEXT"))
	var msgs [][]byte
	var oversized bool
	for i := 0; i < len(huge); i += 32 << 10 {
		got, _, err := d.Feed(huge[i:min(i+32<<10, len(huge))])
		msgs = append(msgs, got...)
		oversized = oversized || errors.Is(err, ErrOversized)
		if cap(d.buf) > MaxMessage+64<<10 {
			t.Fatalf("deframer holds %d bytes, over MaxMessage %d and a read", cap(d.buf), MaxMessage)
		}
	}
	if !oversized || len(msgs) != 1 || string(msgs[0]) != "MSH|^~\\&|NEXT" {
		t.Fatalf("oversized %v, messages %q", oversized, msgs)
	}
}
