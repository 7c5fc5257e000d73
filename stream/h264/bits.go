package h264

import "errors"

// errShort is returned when a header ends before a field it must hold.
var errShort = errors.New("h264: header ends early")

// bitReader reads the RBSP of a NAL unit (its payload with the emulation prevention
// bytes removed) most significant bit first, with the Exp-Golomb codes of H.264
// clause 9.1.
type bitReader struct {
	b   []byte
	pos int // in bits
}

// newRBSPReader returns a reader over the payload of nal after its header byte, with
// every emulation prevention byte (the 03 of 00 00 03) taken out.
func newRBSPReader(nal []byte) *bitReader {
	if len(nal) <= 1 {
		return &bitReader{}
	}
	payload := nal[1:]
	rbsp := make([]byte, 0, len(payload))
	zeros := 0
	for _, c := range payload {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		rbsp = append(rbsp, c)
	}
	return &bitReader{b: rbsp}
}

func (r *bitReader) bit() (uint32, error) {
	if r.pos >= len(r.b)*8 {
		return 0, errShort
	}
	v := r.b[r.pos/8] >> (7 - uint(r.pos%8)) & 1
	r.pos++
	return uint32(v), nil
}

func (r *bitReader) bits(n int) (uint32, error) {
	var v uint32
	for range n {
		b, err := r.bit()
		if err != nil {
			return 0, err
		}
		v = v<<1 | b
	}
	return v, nil
}

func (r *bitReader) flag() (bool, error) {
	b, err := r.bit()
	return b == 1, err
}

// maxGolombZeros bounds the leading zeros of an Exp-Golomb code: 32 or more would
// not fit the 32-bit values H.264 allows, and only a corrupt header has them.
const maxGolombZeros = 31

// ue reads an unsigned Exp-Golomb code, ue(v).
func (r *bitReader) ue() (uint32, error) {
	zeros := 0
	for {
		b, err := r.bit()
		if err != nil {
			return 0, err
		}
		if b == 1 {
			break
		}
		zeros++
		if zeros > maxGolombZeros {
			return 0, errors.New("h264: Exp-Golomb code longer than 32 bits")
		}
	}
	rest, err := r.bits(zeros)
	if err != nil {
		return 0, err
	}
	return uint32((uint64(1)<<zeros - 1) + uint64(rest)), nil
}

// se reads a signed Exp-Golomb code, se(v).
func (r *bitReader) se() (int32, error) {
	k, err := r.ue()
	if err != nil {
		return 0, err
	}
	if k%2 == 1 {
		return int32((int64(k) + 1) / 2), nil
	}
	return int32(-(int64(k) / 2)), nil
}
