// Package talkback plays the hospital's voice on the box: the G.711 µ-law RTP the
// hub forwards from a doctor's push-to-talk, to a command that plays PCM (aplay, a
// sound server's client) or as RTP to the ambulance's intercom.
package talkback

// DecodeULaw appends to dst the 16-bit linear PCM samples of G.711 µ-law bytes
// (ITU-T G.711 §3: bits inverted, then sign, 3-bit segment, 4-bit mantissa).
func DecodeULaw(dst []int16, src []byte) []int16 {
	for _, b := range src {
		dst = append(dst, ulawToLinear[b])
	}
	return dst
}

// EncodeULaw appends the µ-law byte of each sample: the simulators and tests speak
// it, and it documents the decoder by its inverse.
func EncodeULaw(dst []byte, src []int16) []byte {
	const bias, clip = 0x84, 32635
	for _, s := range src {
		x := int(s)
		sign := 0
		if x < 0 {
			x, sign = -x, 0x80
		}
		x = min(x, clip) + bias
		exp := 7
		for mask := 0x4000; x&mask == 0 && exp > 0; mask >>= 1 {
			exp--
		}
		mant := (x >> (exp + 3)) & 0x0f
		dst = append(dst, ^byte(sign|exp<<4|mant))
	}
	return dst
}

var ulawToLinear = func() (t [256]int16) {
	for i := range t {
		u := ^byte(i)
		exp := int(u>>4) & 7
		mant := int(u & 0x0f)
		x := ((mant << 3) + 0x84) << exp
		x -= 0x84
		if u&0x80 != 0 {
			x = -x
		}
		t[i] = int16(x)
	}
	return t
}()
