package h264

import "fmt"

// SliceType is slice_type modulo 5 (H.264 Table 7-6).
type SliceType uint8

// Slice types.
const (
	SliceP  SliceType = 0
	SliceB  SliceType = 1
	SliceI  SliceType = 2
	SliceSP SliceType = 3
	SliceSI SliceType = 4
)

// String names the slice type.
func (t SliceType) String() string {
	switch t {
	case SliceP:
		return "P"
	case SliceB:
		return "B"
	case SliceI:
		return "I"
	case SliceSP:
		return "SP"
	case SliceSI:
		return "SI"
	}
	return fmt.Sprintf("slice type %d", uint8(t))
}

// SliceHeader is the start of a slice header (H.264 clause 7.3.3): enough to find
// where a picture begins and whether it is bi-predicted.
type SliceHeader struct {
	// FirstMB is first_mb_in_slice: 0 for the first slice of a picture.
	FirstMB uint32
	Type    SliceType
	PPSID   uint32
}

// ParseSliceHeader reads the first fields of the slice nal (type 1 or 5, its header
// byte first).
func ParseSliceHeader(nal []byte) (SliceHeader, error) {
	t := TypeOf(nal)
	if t != NALSlice && t != NALIDR {
		return SliceHeader{}, fmt.Errorf("h264: slice header: NAL unit is %s, not a slice", t)
	}
	// Three Exp-Golomb codes fit in the first 12 bytes of any real slice; reading no
	// further keeps the cost per slice constant.
	head := nal
	if len(head) > 13 {
		head = head[:13]
	}
	r := newRBSPReader(head)
	var h SliceHeader
	var err error
	if h.FirstMB, err = r.ue(); err != nil {
		return SliceHeader{}, fmt.Errorf("h264: slice header: first_mb_in_slice: %w", err)
	}
	st, err := r.ue()
	if err != nil {
		return SliceHeader{}, fmt.Errorf("h264: slice header: slice_type: %w", err)
	}
	if st > 9 {
		return SliceHeader{}, fmt.Errorf("h264: slice header: slice_type %d out of range 0..9", st)
	}
	h.Type = SliceType(st % 5)
	if h.PPSID, err = r.ue(); err != nil {
		return SliceHeader{}, fmt.Errorf("h264: slice header: pic_parameter_set_id: %w", err)
	}
	if h.PPSID > 255 {
		return SliceHeader{}, fmt.Errorf("h264: slice header: pic_parameter_set_id %d out of range 0..255", h.PPSID)
	}
	return h, nil
}
