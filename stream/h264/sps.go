package h264

import (
	"errors"
	"fmt"
	"time"
)

// SPS is what the box needs from a sequence parameter set (H.264 clause 7.3.2.1.1):
// the profile and level a browser's decoder must accept, and the picture size for the
// status page.
type SPS struct {
	ProfileIDC uint8
	// Constraints is the byte of constraint_set0..5 flags and reserved bits as sent,
	// the middle byte of an SDP profile-level-id.
	Constraints uint8
	LevelIDC    uint8
	ID          uint32
	// ChromaFormat is chroma_format_idc: 1 (4:2:0) unless a High profile says otherwise.
	ChromaFormat uint32
	// FrameMBsOnly is false for interlaced (field or MBAFF) coding.
	FrameMBsOnly bool
	// Width and Height are the displayed picture size in pixels, after cropping.
	Width, Height int
	// NumUnitsInTick and TimeScale are the VUI timing information, zero when the
	// SPS has none (H.264 Annex E.2.1).
	NumUnitsInTick, TimeScale uint32
}

// FrameDuration returns how long one frame lasts by the VUI timing information
// (two ticks a frame, H.264 equation E-6 for progressive video), and false when the
// SPS has none or it is not a plausible frame rate (1 to 1000 frames a second).
func (s SPS) FrameDuration() (time.Duration, bool) {
	if s.NumUnitsInTick == 0 || s.TimeScale == 0 {
		return 0, false
	}
	d := time.Duration(2 * uint64(s.NumUnitsInTick) * uint64(time.Second) / uint64(s.TimeScale))
	if d < time.Millisecond || d > time.Second {
		return 0, false
	}
	return d, true
}

// highProfiles are the profile_idc values whose SPS carries the chroma format, bit
// depths and scaling matrices (H.264 clause 7.3.2.1.1).
var highProfiles = map[uint8]bool{100: true, 110: true, 122: true, 244: true, 44: true, 83: true, 86: true, 118: true, 128: true, 138: true, 139: true, 134: true, 135: true}

// maxMBs bounds the picture size a header may claim: 8192x4320 (level 6.2's largest
// frame, 139264 macroblocks) with room to spare. Larger means corruption.
const maxMBs = 1 << 18

// ParseSPS reads the sequence parameter set nal (its header byte first, emulation
// prevention bytes still in) as far as the frame cropping, which is all the box needs.
func ParseSPS(nal []byte) (SPS, error) {
	if TypeOf(nal) != NALSPS {
		return SPS{}, fmt.Errorf("h264: SPS: NAL unit is %s, not SPS", TypeOf(nal))
	}
	if len(nal) < 4 {
		return SPS{}, fmt.Errorf("h264: SPS: %d bytes, need at least 4", len(nal))
	}
	s := SPS{ProfileIDC: nal[1], Constraints: nal[2], LevelIDC: nal[3], ChromaFormat: 1}
	r := newRBSPReader(nal)
	r.pos = 24
	if err := s.parse(r); err != nil {
		return SPS{}, fmt.Errorf("h264: SPS (profile %d level %d): %w", s.ProfileIDC, s.LevelIDC, err)
	}
	return s, nil
}

func (s *SPS) parse(r *bitReader) error {
	var err error
	if s.ID, err = r.ue(); err != nil {
		return err
	}
	if s.ID > 31 {
		return fmt.Errorf("seq_parameter_set_id %d out of range 0..31", s.ID)
	}
	if highProfiles[s.ProfileIDC] {
		if err := s.parseChroma(r); err != nil {
			return err
		}
	}
	if err := skipFrameNumAndPOC(r); err != nil {
		return err
	}
	if _, err := r.ue(); err != nil { // max_num_ref_frames
		return err
	}
	if _, err := r.flag(); err != nil { // gaps_in_frame_num_value_allowed_flag
		return err
	}
	return s.parseSize(r)
}

// parseChroma reads the High profiles' chroma format, bit depths and scaling lists.
func (s *SPS) parseChroma(r *bitReader) error {
	var err error
	if s.ChromaFormat, err = r.ue(); err != nil {
		return err
	}
	if s.ChromaFormat > 3 {
		return fmt.Errorf("chroma_format_idc %d out of range 0..3", s.ChromaFormat)
	}
	if s.ChromaFormat == 3 {
		if _, err := r.flag(); err != nil { // separate_colour_plane_flag
			return err
		}
	}
	for range 2 { // bit_depth_luma_minus8, bit_depth_chroma_minus8
		if _, err := r.ue(); err != nil {
			return err
		}
	}
	if _, err := r.flag(); err != nil { // qpprime_y_zero_transform_bypass_flag
		return err
	}
	present, err := r.flag() // seq_scaling_matrix_present_flag
	if err != nil || !present {
		return err
	}
	lists := 8
	if s.ChromaFormat == 3 {
		lists = 12
	}
	for i := range lists {
		listPresent, err := r.flag()
		if err != nil {
			return err
		}
		if !listPresent {
			continue
		}
		size := 16
		if i >= 6 {
			size = 64
		}
		if err := skipScalingList(r, size); err != nil {
			return err
		}
	}
	return nil
}

// skipScalingList reads past one scaling_list() (H.264 clause 7.3.2.1.1.1).
func skipScalingList(r *bitReader, size int) error {
	last, next := int32(8), int32(8)
	for range size {
		if next != 0 {
			delta, err := r.se()
			if err != nil {
				return err
			}
			next = (last + delta + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
	return nil
}

// maxPOCCycle bounds num_ref_frames_in_pic_order_cnt_cycle (H.264 allows 0..255).
const maxPOCCycle = 255

// skipFrameNumAndPOC reads past log2_max_frame_num and the picture order count fields.
func skipFrameNumAndPOC(r *bitReader) error {
	if _, err := r.ue(); err != nil { // log2_max_frame_num_minus4
		return err
	}
	pocType, err := r.ue()
	if err != nil {
		return err
	}
	switch pocType {
	case 0:
		_, err = r.ue() // log2_max_pic_order_cnt_lsb_minus4
		return err
	case 1:
		if _, err := r.flag(); err != nil { // delta_pic_order_always_zero_flag
			return err
		}
		for range 2 { // offset_for_non_ref_pic, offset_for_top_to_bottom_field
			if _, err := r.se(); err != nil {
				return err
			}
		}
		n, err := r.ue()
		if err != nil {
			return err
		}
		if n > maxPOCCycle {
			return fmt.Errorf("num_ref_frames_in_pic_order_cnt_cycle %d over %d", n, maxPOCCycle)
		}
		for range n {
			if _, err := r.se(); err != nil {
				return err
			}
		}
		return nil
	case 2:
		return nil
	}
	return fmt.Errorf("pic_order_cnt_type %d out of range 0..2", pocType)
}

// parseSize reads the picture size in macroblocks and the cropping window.
func (s *SPS) parseSize(r *bitReader) error {
	wMBs, err := r.ue()
	if err != nil {
		return err
	}
	hUnits, err := r.ue()
	if err != nil {
		return err
	}
	if s.FrameMBsOnly, err = r.flag(); err != nil {
		return err
	}
	fieldFactor := 2
	if s.FrameMBsOnly {
		fieldFactor = 1
	} else if _, err := r.flag(); err != nil { // mb_adaptive_frame_field_flag
		return err
	}
	if _, err := r.flag(); err != nil { // direct_8x8_inference_flag
		return err
	}
	if uint64(wMBs+1)*uint64(hUnits+1)*uint64(fieldFactor) > maxMBs {
		return fmt.Errorf("picture of %dx%d macroblocks is too large", wMBs+1, (hUnits+1)*uint32(fieldFactor))
	}
	width := int(wMBs+1) * 16
	height := int(hUnits+1) * 16 * fieldFactor
	cropping, err := r.flag()
	if err != nil {
		return err
	}
	if cropping {
		var crop [4]uint32 // left, right, top, bottom
		for i := range crop {
			if crop[i], err = r.ue(); err != nil {
				return err
			}
		}
		unitX, unitY := s.cropUnits(fieldFactor)
		cw := (int64(crop[0]) + int64(crop[1])) * int64(unitX)
		ch := (int64(crop[2]) + int64(crop[3])) * int64(unitY)
		if cw >= int64(width) || ch >= int64(height) {
			return errors.New("frame cropping removes the whole picture")
		}
		width -= int(cw)
		height -= int(ch)
	}
	s.Width, s.Height = width, height
	if err := s.parseVUITiming(r); err != nil {
		// A VUI cut short costs only the frame rate; what came before stands.
		s.NumUnitsInTick, s.TimeScale = 0, 0
	}
	return nil
}

// parseVUITiming reads the VUI as far as its timing information (H.264 Annex E.1.1).
func (s *SPS) parseVUITiming(r *bitReader) error {
	// skip reads past a field of n bits when the flag before it is set.
	skip := func(n int) error {
		on, err := r.flag()
		if err == nil && on {
			_, err = r.bits(n)
		}
		return err
	}
	present, err := r.flag() // vui_parameters_present_flag
	if err != nil || !present {
		return err
	}
	if on, err := r.flag(); err != nil { // aspect_ratio_info_present_flag
		return err
	} else if on {
		idc, err := r.bits(8)
		if err == nil && idc == 255 { // Extended_SAR: sar_width, sar_height
			_, err = r.bits(32)
		}
		if err != nil {
			return err
		}
	}
	if err := skip(1); err != nil { // overscan_info_present_flag, overscan_appropriate_flag
		return err
	}
	if on, err := r.flag(); err != nil { // video_signal_type_present_flag
		return err
	} else if on {
		if _, err := r.bits(4); err != nil { // video_format, video_full_range_flag
			return err
		}
		if err := skip(24); err != nil { // colour_description_present_flag and its 3 bytes
			return err
		}
	}
	if on, err := r.flag(); err != nil { // chroma_loc_info_present_flag
		return err
	} else if on {
		if _, err := r.ue(); err != nil {
			return err
		}
		if _, err := r.ue(); err != nil {
			return err
		}
	}
	timing, err := r.flag()
	if err != nil || !timing {
		return err
	}
	if s.NumUnitsInTick, err = r.bits(32); err != nil {
		return err
	}
	s.TimeScale, err = r.bits(32)
	return err
}

// cropUnits returns CropUnitX and CropUnitY (H.264 equations 7-19 to 7-22).
func (s *SPS) cropUnits(fieldFactor int) (int, int) {
	switch s.ChromaFormat {
	case 0, 3:
		return 1, fieldFactor
	case 2:
		return 2, fieldFactor
	}
	return 2, 2 * fieldFactor
}

// ProfileLevelID returns the SDP profile-level-id of this SPS (RFC 6184 §8.1): six
// hex digits of profile_idc, the constraint flags and level_idc.
func (s SPS) ProfileLevelID() string {
	return fmt.Sprintf("%02x%02x%02x", s.ProfileIDC, s.Constraints, s.LevelIDC)
}

// ConstrainedBaseline reports whether the stream is Constrained Baseline, which every
// browser decodes: the profile_idc and constraint flag pairs of RFC 6184 Table 5.
func (s SPS) ConstrainedBaseline() bool {
	const set0, set1 = 0x80, 0x40
	switch s.ProfileIDC {
	case 66:
		return s.Constraints&set1 != 0
	case 77:
		return s.Constraints&set0 != 0
	case 88:
		return s.Constraints&(set0|set1) == set0|set1
	}
	return false
}

// Profile names the profile as H.264 Annex A does, for people.
func (s SPS) Profile() string {
	switch s.ProfileIDC {
	case 66:
		if s.ConstrainedBaseline() {
			return "Constrained Baseline"
		}
		return "Baseline"
	case 77:
		return "Main"
	case 88:
		return "Extended"
	case 100:
		if s.Constraints&0x0c == 0x0c {
			return "Constrained High"
		}
		return "High"
	case 110:
		return "High 10"
	case 122:
		return "High 4:2:2"
	case 244:
		return "High 4:4:4 Predictive"
	case 44:
		return "CAVLC 4:4:4 Intra"
	}
	return fmt.Sprintf("profile_idc %d", s.ProfileIDC)
}

// Level returns the level as people write it ("3.1"; level_idc 9 and level 1b are
// "1b").
func (s SPS) Level() string {
	if s.LevelIDC == 9 || (s.LevelIDC == 11 && s.Constraints&0x10 != 0 && (s.ProfileIDC == 66 || s.ProfileIDC == 77 || s.ProfileIDC == 88)) {
		return "1b"
	}
	return fmt.Sprintf("%d.%d", s.LevelIDC/10, s.LevelIDC%10)
}
