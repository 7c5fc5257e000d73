package intellivue

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// reader walks big-endian message data. The first short read sets err and every later
// read returns zero, so decoders read a whole structure and check err once.
type reader struct {
	b   []byte
	off int
	err error
	ctx string
}

func newReader(b []byte, ctx string) *reader { return &reader{b: b, ctx: ctx} }

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || r.off+n > len(r.b) {
		r.err = fmt.Errorf("intellivue: %s: need %d bytes at offset %d of %d", r.ctx, n, r.off, len(r.b))
		return false
	}
	return true
}

func (r *reader) u8() uint8 {
	if !r.need(1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

// sub returns a reader over the next n bytes and skips them.
func (r *reader) sub(n int, ctx string) *reader {
	b := r.bytes(n)
	s := newReader(b, ctx)
	if r.err != nil {
		s.err = r.err
	}
	return s
}

func (r *reader) left() int { return len(r.b) - r.off }

// writer builds big-endian message data.
type writer struct{ b []byte }

func (w *writer) u8(v uint8)    { w.b = append(w.b, v) }
func (w *writer) u16(v uint16)  { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32)  { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) raw(p ...byte) { w.b = append(w.b, p...) }
func (w *writer) mark() int     { w.u16(0); return len(w.b) - 2 }
func (w *writer) patch(at int)  { binary.BigEndian.PutUint16(w.b[at:], uint16(len(w.b)-at-2)) }

// Float is the monitor's 32-bit FLOAT-Type: an 8-bit signed exponent (base 10) and a
// 24-bit signed mantissa.
type Float uint32

// Special FLOAT-Type values.
const (
	FloatNaN    Float = 0x007FFFFF
	FloatNRes   Float = 0x00800000 // not at this resolution
	FloatPosInf Float = 0x007FFFFE
	FloatNegInf Float = 0x00800002
)

// Value converts to float64; ok is false for the special values.
func (f Float) Value() (v float64, ok bool) {
	switch f {
	case FloatNaN, FloatNRes, FloatPosInf, FloatNegInf:
		return math.NaN(), false
	}
	exp := int8(f >> 24)
	mant := int32(f<<8) >> 8
	if exp < 0 {
		// Dividing two exact numbers rounds once, to the double nearest the decimal the
		// monitor meant: 23 / 10 is 2.3, where 23 × 0.1 is 2.3000000000000003.
		return float64(mant) / math.Pow10(-int(exp)), true
	}
	return float64(mant) * math.Pow10(int(exp)), true
}

// MakeFloat encodes v with the given number of decimals (0-6), as monitors do: 37.2 °C
// is mantissa 372, exponent -1.
func MakeFloat(v float64, decimals int) Float {
	if math.IsNaN(v) {
		return FloatNaN
	}
	m := math.Round(v * math.Pow10(decimals))
	for m > 0x7FFFFF || m < -0x800000 {
		m = math.Round(m / 10)
		decimals--
	}
	return Float(uint32(int8(-decimals))<<24 | uint32(int32(m))&0xFFFFFF)
}

// AbsoluteTime is the monitor's BCD wall-clock time.
type AbsoluteTime [8]byte

func bcd(v int) byte       { return byte(v/10<<4 | v%10) }
func unbcd(b byte) int     { return int(b>>4)*10 + int(b&0x0F) }
func validBCD(b byte) bool { return b>>4 < 10 && b&0x0F < 10 }

// MakeAbsoluteTime encodes t (in its own location) to 1/100 s.
func MakeAbsoluteTime(t time.Time) AbsoluteTime {
	return AbsoluteTime{bcd(t.Year() / 100), bcd(t.Year() % 100), bcd(int(t.Month())), bcd(t.Day()),
		bcd(t.Hour()), bcd(t.Minute()), bcd(t.Second()), bcd(t.Nanosecond() / 1e7)}
}

// Time decodes the BCD time in loc; ok is false for an unset (0xFF…) or malformed time.
func (a AbsoluteTime) Time(loc *time.Location) (time.Time, bool) {
	for _, b := range a {
		if !validBCD(b) {
			return time.Time{}, false
		}
	}
	y := unbcd(a[0])*100 + unbcd(a[1])
	mo, d := unbcd(a[2]), unbcd(a[3])
	if y == 0 || mo < 1 || mo > 12 || d < 1 || d > 31 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, unbcd(a[4]), unbcd(a[5]), unbcd(a[6]), unbcd(a[7])*1e7, loc), true
}

// RelativeTime counts 1/8 ms since the monitor started.
type RelativeTime uint32

// Duration converts to a time.Duration.
func (r RelativeTime) Duration() time.Duration { return time.Duration(r) * 125 * time.Microsecond }

// Rel converts a duration to RelativeTime.
func Rel(d time.Duration) RelativeTime { return RelativeTime(d / (125 * time.Microsecond)) }
