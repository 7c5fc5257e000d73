package telemetry

import (
	"math"
	"strconv"
	"strings"
)

// Channel identifies where on the monitor a value, wave, alarm or device event came from.
// Monitors report one quantity on several channels (two temperature probes, respiration
// from the capnograph and from the ECG impedance, an arterial line on P1 and on P5); the
// box keeps them apart by (source, code, channel ID) everywhere: on the bus, in
// GET /api/v1/vitals, in the record and its exports, and on the wire to the hospital.
type Channel struct {
	// ID is the monitor's own identity of the channel, stable while it runs: the HL7
	// OBX-4 containment path ("1.26.1.2"), the Datex record slot ("T2", "P1"), the
	// IntelliVue object handle ("0x0123"). Empty when the protocol has one channel per
	// quantity (Nonin) or did not say.
	ID string
	// Label is what the monitor shows for the channel ("T2", "ART", "Tesoph"), or names
	// the device it belongs to when the monitor shows nothing more specific.
	Label string
	// Primary is set when the monitor (or its driver, from what the monitor says) marks
	// this channel as the one to show for its quantity; see PrimaryOf.
	Primary bool
}

// NameOf returns the name to show for a code: its MDC reference id from mdc.go, else the
// reference id or label the monitor itself sent (ref), else "MDC_CODE_<n>".
func NameOf(c Code, ref string) string {
	if q, ok := Lookup(c); ok {
		return q.Name
	}
	if ref = strings.TrimSpace(ref); ref != "" {
		return ref
	}
	return c.Name()
}

// Decimal rounds v to the given number of decimals so that it prints as the monitor
// gave it: 23 × 0.1 is 2.3000000000000003 in binary, Decimal(…, 1) is 2.3. Monitors send
// values as decimal digits (HL7 text), scaled counts (Datex 1/100) or mantissa and
// exponent (IntelliVue); their precision is the decimals to keep.
func Decimal(v float64, decimals int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || decimals < 0 || decimals > 15 {
		return v
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'f', decimals, 64), 64)
	if err != nil {
		return v
	}
	return r
}

// CompareChannelIDs orders channel IDs the way the monitor counts them: dotted or
// trailing numbers compare as numbers ("1.6.1.1" < "1.20.1.1", "T2" < "T10"), other text
// as text. It returns -1, 0 or +1.
func CompareChannelIDs(a, b string) int {
	for a != "" && b != "" {
		ra, rest1 := splitRun(a)
		rb, rest2 := splitRun(b)
		na, errA := strconv.ParseUint(ra, 10, 64)
		nb, errB := strconv.ParseUint(rb, 10, 64)
		switch {
		case errA == nil && errB == nil:
			if na != nb {
				return cmp3(na < nb)
			}
		case ra != rb:
			return cmp3(ra < rb)
		}
		a, b = rest1, rest2
	}
	switch {
	case a == b:
		return 0
	case a == "":
		return -1
	}
	return 1
}

func cmp3(less bool) int {
	if less {
		return -1
	}
	return 1
}

// splitRun cuts s after its leading run of digits or of non-digits.
func splitRun(s string) (run, rest string) {
	digit := s[0] >= '0' && s[0] <= '9'
	i := 1
	for i < len(s) && (s[i] >= '0' && s[i] <= '9') == digit {
		i++
	}
	return s[:i], s[i:]
}

// PrimaryOf picks "the" value among the latest numerics of one code, for a consumer that
// wants a single heart rate or temperature. The rule, in order:
//
//  1. a valid value (not flagged invalid, finite) before an invalid one;
//  2. the channel the monitor marks primary (Channel.Primary): the displayed HR of a
//     Datex monitor, the ECG-derived rate or the capnograph's respiration rate of an
//     HL7 message that carries several (see telemetry/hl7);
//  3. the lowest source name, then the lowest channel in the monitor's own order
//     (CompareChannelIDs): T1 before T2, P1 before P5.
//
// It returns nil for no numerics.
func PrimaryOf(ns []*Numeric, sources []string) *Numeric {
	best := -1
	for i := range ns {
		if best < 0 || betterPrimary(ns[i], sources[i], ns[best], sources[best]) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	return ns[best]
}

func betterPrimary(a *Numeric, srcA string, b *Numeric, srcB string) bool {
	va, vb := usable(a), usable(b)
	if va != vb {
		return va
	}
	if a.Channel.Primary != b.Channel.Primary {
		return a.Channel.Primary
	}
	if srcA != srcB {
		return srcA < srcB
	}
	return CompareChannelIDs(a.Channel.ID, b.Channel.ID) < 0
}

func usable(n *Numeric) bool {
	return !n.Invalid && !math.IsNaN(n.Value) && !math.IsInf(n.Value, 0)
}
