package h264

// SplitNALUs returns the NAL units of the Annex B byte stream b (H.264 Annex B),
// without their start codes and without the zero bytes that may trail them. They
// share memory with b. Bytes before the first start code are not a NAL unit and are
// skipped.
func SplitNALUs(b []byte) [][]byte {
	var nalus [][]byte
	start := -1 // first byte of the current NAL unit
	zeros := 0
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == 0:
			zeros++
			continue
		case b[i] == 1 && zeros >= 2:
			if start >= 0 {
				nalus = appendNALU(nalus, b[start:i-zeros])
			}
			start = i + 1
		}
		zeros = 0
	}
	if start >= 0 {
		nalus = appendNALU(nalus, b[start:len(b)-zeros])
	}
	return nalus
}

func appendNALU(nalus [][]byte, nal []byte) [][]byte {
	if len(nal) == 0 {
		return nalus
	}
	return append(nalus, nal)
}

// SplitAccessUnits groups the NAL units of the Annex B byte stream b into access
// units by the rules of H.264 clause 7.4.1.2.3: a picture begins at an access unit
// delimiter, SPS, PPS or SEI that follows a slice, or at a slice with
// first_mb_in_slice 0 that follows a slice. Timestamps count frames of frameTicks
// 90 kHz ticks each. The access units share no memory with b. Pictures without a
// slice (trailing parameter sets) are left out.
func SplitAccessUnits(b []byte, frameTicks uint32) []AccessUnit {
	var aus []AccessUnit
	var cur []byte
	curHasVCL := false
	flush := func() {
		if curHasVCL {
			au := AccessUnit{Data: cur, Timestamp: uint32(len(aus)) * frameTicks}
			au.inspect()
			aus = append(aus, au)
		}
		cur, curHasVCL = nil, false
	}
	for _, nal := range SplitNALUs(b) {
		if curHasVCL && startsAccessUnit(nal) {
			flush()
		}
		cur = append(cur, startCode...)
		cur = append(cur, nal...)
		if TypeOf(nal).IsVCL() {
			curHasVCL = true
		}
	}
	flush()
	return aus
}

// startsAccessUnit reports whether nal, following a slice, begins a new access unit.
func startsAccessUnit(nal []byte) bool {
	switch t := TypeOf(nal); {
	case t == NALAUD || t == NALSPS || t == NALPPS || t == NALSEI || (t >= 14 && t <= 18):
		return true
	case t == NALSlice || t == NALIDR:
		h, err := ParseSliceHeader(nal)
		return err == nil && h.FirstMB == 0
	}
	return false
}
