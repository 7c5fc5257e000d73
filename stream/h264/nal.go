// Package h264 reads H.264 (ITU-T H.264 / ISO 14496-10) as cameras send it: it turns
// RTP packets (RFC 6184, packetization mode 1) and Annex B byte streams into whole
// access units, keeps the parameter sets so that every IDR picture can be decoded on
// its own, and reads just enough of the SPS and slice headers to tell a browser's
// decoder apart from what it will refuse. It runs on the box.
package h264

import "fmt"

// NALType is nal_unit_type, the low five bits of a NAL unit's first byte (H.264
// Table 7-1), extended with the RTP aggregation and fragmentation types of RFC 6184.
type NALType uint8

// NAL unit types the box acts on.
const (
	NALSlice    NALType = 1  // coded slice of a non-IDR picture
	NALSliceA   NALType = 2  // slice data partition A
	NALSliceB   NALType = 3  // slice data partition B
	NALSliceC   NALType = 4  // slice data partition C
	NALIDR      NALType = 5  // coded slice of an IDR picture
	NALSEI      NALType = 6  // supplemental enhancement information
	NALSPS      NALType = 7  // sequence parameter set
	NALPPS      NALType = 8  // picture parameter set
	NALAUD      NALType = 9  // access unit delimiter
	NALEndSeq   NALType = 10 // end of sequence
	NALEndStm   NALType = 11 // end of stream
	NALFiller   NALType = 12 // filler data
	NALSTAPA    NALType = 24 // RFC 6184 single-time aggregation packet A
	NALSTAPB    NALType = 25 // RFC 6184 single-time aggregation packet B
	NALMTAP16   NALType = 26 // RFC 6184 multi-time aggregation packet, 16-bit offsets
	NALMTAP24   NALType = 27 // RFC 6184 multi-time aggregation packet, 24-bit offsets
	NALFUA      NALType = 28 // RFC 6184 fragmentation unit A
	NALFUB      NALType = 29 // RFC 6184 fragmentation unit B
	nalTypeMask         = 0x1f
)

// TypeOf returns the type of the NAL unit nal (its header byte first), or 0 for an
// empty one.
func TypeOf(nal []byte) NALType {
	if len(nal) == 0 {
		return 0
	}
	return NALType(nal[0] & nalTypeMask)
}

// IsVCL reports whether the type carries picture data (a slice or a partition), as
// opposed to parameter sets and other side information.
func (t NALType) IsVCL() bool { return t >= NALSlice && t <= NALIDR }

// String names the type as H.264 and RFC 6184 do.
func (t NALType) String() string {
	switch t {
	case NALSlice:
		return "non-IDR slice"
	case NALSliceA, NALSliceB, NALSliceC:
		return fmt.Sprintf("slice data partition %c", 'A'+rune(t-NALSliceA))
	case NALIDR:
		return "IDR slice"
	case NALSEI:
		return "SEI"
	case NALSPS:
		return "SPS"
	case NALPPS:
		return "PPS"
	case NALAUD:
		return "access unit delimiter"
	case NALEndSeq:
		return "end of sequence"
	case NALEndStm:
		return "end of stream"
	case NALFiller:
		return "filler"
	case NALSTAPA:
		return "STAP-A"
	case NALSTAPB:
		return "STAP-B"
	case NALMTAP16:
		return "MTAP16"
	case NALMTAP24:
		return "MTAP24"
	case NALFUA:
		return "FU-A"
	case NALFUB:
		return "FU-B"
	}
	return fmt.Sprintf("NAL type %d", uint8(t))
}
