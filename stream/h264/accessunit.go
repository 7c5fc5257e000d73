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

// contents is what inspect finds in an access unit.
type contents struct {
	sps, pps, vcl bool
	// firstSlice is true when the first slice has first_mb_in_slice 0: the picture
	// has its beginning.
	firstSlice bool
}

// inspect sets IDR and BFrame from the NAL units of Data, and says what else it holds.
func (au *AccessUnit) inspect() contents {
	au.IDR, au.BFrame = false, false
	var c contents
	for _, nal := range SplitNALUs(au.Data) {
		t := TypeOf(nal)
		switch t {
		case NALSPS:
			c.sps = true
		case NALPPS:
			c.pps = true
		case NALIDR:
			au.IDR = true
		}
		if !t.IsVCL() {
			continue
		}
		var h SliceHeader
		var err error
		if t == NALSlice || t == NALIDR {
			h, err = ParseSliceHeader(nal)
		}
		if !c.vcl {
			c.vcl = true
			c.firstSlice = err == nil && h.FirstMB == 0 && (t == NALSlice || t == NALIDR)
		}
		if t == NALSlice && err == nil && h.Type == SliceB {
			au.BFrame = true
		}
	}
	return c
}
