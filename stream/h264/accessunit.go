package h264

// AccessUnit is one coded picture with everything that belongs to it: its slices and
// the parameter sets, SEI and delimiter sent with it, in Annex B form.
type AccessUnit struct {
	// Data holds the NAL units, each after a four-byte start code (00 00 00 01).
	Data []byte
	// Timestamp is the RTP timestamp (90 kHz) of the picture; for an Annex B stream,
	// the picture's index times the frame duration as the reader was told.
	Timestamp uint32
	// IDR is true when the picture is an IDR picture, from which a decoder can start.
	// The depacketizer puts the latest SPS and PPS in front of every IDR picture.
	IDR bool
	// BFrame is true when a slice of the picture is bi-predicted (a B slice), so that
	// pictures arrive out of display order.
	BFrame bool
}

// startCode is the four-byte Annex B start code written in front of every NAL unit.
var startCode = []byte{0, 0, 0, 1}

// NALUs returns the NAL units of the access unit, without start codes. They share
// memory with Data.
func (au AccessUnit) NALUs() [][]byte { return SplitNALUs(au.Data) }

// inspect sets IDR and BFrame from the NAL units of Data.
func (au *AccessUnit) inspect() (hasSPS, hasPPS, hasVCL bool) {
	au.IDR, au.BFrame = false, false
	for _, nal := range SplitNALUs(au.Data) {
		switch t := TypeOf(nal); t {
		case NALSPS:
			hasSPS = true
		case NALPPS:
			hasPPS = true
		case NALIDR:
			au.IDR, hasVCL = true, true
		case NALSlice:
			hasVCL = true
			if h, err := ParseSliceHeader(nal); err == nil && h.Type == SliceB {
				au.BFrame = true
			}
		default:
			if t.IsVCL() {
				hasVCL = true
			}
		}
	}
	return hasSPS, hasPPS, hasVCL
}
