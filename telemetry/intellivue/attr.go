package intellivue

import (
	"fmt"
	"unicode/utf16"
)

// Attribute ids (partition NOM_PART_OBJ).
const (
	AttrHandle       uint16 = 0x0921 // NOM_ATTR_ID_HANDLE
	AttrType         uint16 = 0x092F // NOM_ATTR_ID_TYPE: TYPE {partition, code}
	AttrLabel        uint16 = 0x0924 // NOM_ATTR_ID_LABEL: TextId
	AttrLabelString  uint16 = 0x0927 // NOM_ATTR_ID_LABEL_STRING
	AttrNuValObs     uint16 = 0x0950 // NOM_ATTR_NU_VAL_OBS: NuObsValue
	AttrNuCmpdValObs uint16 = 0x094B // NOM_ATTR_NU_CMPD_VAL_OBS: compound NuObsValue
	AttrSaValObs     uint16 = 0x096E // NOM_ATTR_SA_VAL_OBS: SaObsValue
	AttrSaCmpdValObs uint16 = 0x0967 // NOM_ATTR_SA_CMPD_VAL_OBS
	AttrSaSpec       uint16 = 0x096D // NOM_ATTR_SA_SPECN
	AttrScaleSpec    uint16 = 0x096F // NOM_ATTR_SCALE_SPECN_I16
	AttrSamplePeriod uint16 = 0x098D // NOM_ATTR_TIME_PD_SAMP: RelativeTime
	AttrStampAbs     uint16 = 0x0990 // NOM_ATTR_TIME_STAMP_ABS
	AttrStampRel     uint16 = 0x0991 // NOM_ATTR_TIME_STAMP_REL
	AttrUnitCode     uint16 = 0x0996 // NOM_ATTR_UNIT_CODE
	AttrTimeAbs      uint16 = 0x0987 // NOM_ATTR_TIME_ABS: the MDS clock
	AttrTimeRel      uint16 = 0x098F // NOM_ATTR_TIME_REL
	AttrAlarmsP      uint16 = 0x0902 // NOM_ATTR_AL_MON_P_AL_LIST: physiological alarms
	AttrAlarmsT      uint16 = 0x0904 // NOM_ATTR_AL_MON_T_AL_LIST: technical alarms
)

// Measurement state bits.
const (
	StateInvalid       uint16 = 0x8000
	StateQuestionable  uint16 = 0x4000
	StateUnavailable   uint16 = 0x2000
	StateCalibrating   uint16 = 0x1000
	StateTestData      uint16 = 0x0800
	StateDemoData      uint16 = 0x0400
	stateNotTrustworth        = StateInvalid | StateQuestionable | StateUnavailable | StateCalibrating
)

// NuObs is NuObsValue: one numeric.
type NuObs struct {
	PhysioID uint16
	State    uint16
	Unit     uint16
	Value    Float
}

func (n NuObs) put(w *writer) {
	w.u16(n.PhysioID)
	w.u16(n.State)
	w.u16(n.Unit)
	w.u32(uint32(n.Value))
}

// Encode returns the attribute value.
func (n NuObs) Encode() []byte { var w writer; n.put(&w); return w.b }

func getNuObs(r *reader) NuObs { return NuObs{r.u16(), r.u16(), r.u16(), Float(r.u32())} }

// ParseNuObs decodes NOM_ATTR_NU_VAL_OBS.
func ParseNuObs(b []byte) (NuObs, error) {
	r := newReader(b, "numeric observation")
	n := getNuObs(r)
	return n, r.err
}

// EncodeNuCmpd returns a compound numeric (NIBP sys/dia/mean).
func EncodeNuCmpd(ns []NuObs) []byte {
	var w writer
	w.u16(uint16(len(ns)))
	w.u16(uint16(10 * len(ns)))
	for _, n := range ns {
		n.put(&w)
	}
	return w.b
}

// ParseNuCmpd decodes NOM_ATTR_NU_CMPD_VAL_OBS.
func ParseNuCmpd(b []byte) ([]NuObs, error) {
	r := newReader(b, "compound numeric")
	count := int(r.u16())
	s := r.sub(int(r.u16()), "compound numeric values")
	var out []NuObs
	for i := 0; i < count && s.err == nil; i++ {
		n := getNuObs(s)
		if s.err == nil {
			out = append(out, n)
		}
	}
	if r.err != nil {
		return out, r.err
	}
	return out, s.err
}

// SaObs is SaObsValue: a block of samples of one wave.
type SaObs struct {
	PhysioID uint16
	State    uint16
	Samples  []byte // big-endian samples of SaSpec.SampleSize bits
}

// Encode returns the attribute value.
func (s SaObs) Encode() []byte {
	var w writer
	w.u16(s.PhysioID)
	w.u16(s.State)
	w.u16(uint16(len(s.Samples)))
	w.raw(s.Samples...)
	return w.b
}

func getSaObs(r *reader) SaObs {
	s := SaObs{PhysioID: r.u16(), State: r.u16()}
	s.Samples = r.bytes(int(r.u16()))
	return s
}

// ParseSaObs decodes NOM_ATTR_SA_VAL_OBS.
func ParseSaObs(b []byte) (SaObs, error) {
	r := newReader(b, "sample array observation")
	s := getSaObs(r)
	return s, r.err
}

// ParseSaCmpd decodes NOM_ATTR_SA_CMPD_VAL_OBS.
func ParseSaCmpd(b []byte) ([]SaObs, error) {
	r := newReader(b, "compound sample array")
	count := int(r.u16())
	s := r.sub(int(r.u16()), "compound sample array values")
	var out []SaObs
	for i := 0; i < count && s.err == nil; i++ {
		v := getSaObs(s)
		if s.err == nil {
			out = append(out, v)
		}
	}
	if r.err != nil {
		return out, r.err
	}
	return out, s.err
}

// SaSpec is NOM_ATTR_SA_SPECN.
type SaSpec struct {
	ArraySize       uint16
	SampleSize      uint8 // bits per sample: 8 or 16
	SignificantBits uint8
	Flags           uint16
}

// Encode returns the attribute value.
func (s SaSpec) Encode() []byte {
	var w writer
	w.u16(s.ArraySize)
	w.u8(s.SampleSize)
	w.u8(s.SignificantBits)
	w.u16(s.Flags)
	return w.b
}

// ParseSaSpec decodes NOM_ATTR_SA_SPECN.
func ParseSaSpec(b []byte) (SaSpec, error) {
	r := newReader(b, "sample array specification")
	s := SaSpec{r.u16(), r.u8(), r.u8(), r.u16()}
	if r.err == nil && s.SampleSize != 8 && s.SampleSize != 16 {
		return s, fmt.Errorf("intellivue: sample size %d bits", s.SampleSize)
	}
	return s, r.err
}

// Scale is ScaleRangeSpec16: the linear map from sample values to physical values.
type Scale struct {
	LowerAbs, UpperAbs       Float
	LowerScaled, UpperScaled uint16
}

// Encode returns the attribute value.
func (s Scale) Encode() []byte {
	var w writer
	w.u32(uint32(s.LowerAbs))
	w.u32(uint32(s.UpperAbs))
	w.u16(s.LowerScaled)
	w.u16(s.UpperScaled)
	return w.b
}

// ParseScale decodes NOM_ATTR_SCALE_SPECN_I16.
func ParseScale(b []byte) (Scale, error) {
	r := newReader(b, "scale and range")
	s := Scale{Float(r.u32()), Float(r.u32()), r.u16(), r.u16()}
	if r.err != nil {
		return s, r.err
	}
	if s.UpperScaled == s.LowerScaled {
		return s, fmt.Errorf("intellivue: scale with an empty scaled range (%d)", s.LowerScaled)
	}
	if _, ok := s.LowerAbs.Value(); !ok {
		return s, fmt.Errorf("intellivue: scale lower bound is not a number")
	}
	if _, ok := s.UpperAbs.Value(); !ok {
		return s, fmt.Errorf("intellivue: scale upper bound is not a number")
	}
	return s, nil
}

// Physical maps a sample value.
func (s Scale) Physical(v uint16) float64 {
	lo, _ := s.LowerAbs.Value()
	hi, _ := s.UpperAbs.Value()
	return lo + (float64(v)-float64(s.LowerScaled))*(hi-lo)/(float64(s.UpperScaled)-float64(s.LowerScaled))
}

func u16Value(v uint16) []byte { var w writer; w.u16(v); return w.b }
func u32Value(v uint32) []byte { var w writer; w.u32(v); return w.b }

func parseU16(b []byte) (uint16, bool) {
	if len(b) != 2 {
		return 0, false
	}
	return uint16(b[0])<<8 | uint16(b[1]), true
}

func parseU32(b []byte) (uint32, bool) {
	if len(b) != 4 {
		return 0, false
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), true
}

// typeValue encodes a TYPE attribute.
func typeValue(partition, code uint16) []byte {
	var w writer
	w.u16(partition)
	w.u16(code)
	return w.b
}

// Alarm types of a DevAlarmEntry.
const (
	AlarmTypeNone    uint16 = 0
	AlarmLowT        uint16 = 1 // technical
	AlarmMedT        uint16 = 2
	AlarmHighT       uint16 = 4
	AlarmLowP        uint16 = 256 // physiological
	AlarmMedP        uint16 = 512
	AlarmHighP       uint16 = 1024
	alertInfoStrings uint16 = 0x0202 // STR_ALMON_INFO
)

// DevAlarm is one entry of an alarm list: its source (the physio id concerned), code,
// type (priority and kind) and the text the monitor shows.
type DevAlarm struct {
	Source, Code, Type, State uint16
	// Object is the managed object the alarm is about (its handle names the channel);
	// zero when the monitor does not say.
	Object ObjectID
	Text   string
}

// EncodeAlarmList returns a DevAlarmList attribute value.
func EncodeAlarmList(as []DevAlarm) []byte {
	var w writer
	w.u16(uint16(len(as)))
	list := w.mark()
	for _, a := range as {
		w.u16(a.Source)
		w.u16(a.Code)
		w.u16(a.Type)
		w.u16(a.State)
		w.obj(a.Object)
		w.u16(alertInfoStrings)
		info := w.mark()
		w.u16(0) // al_inst_no
		w.u32(0) // al_text TextId
		w.u16(0) // priority
		w.u16(0) // flags
		units := utf16.Encode([]rune(a.Text))
		w.u16(uint16(2 * (len(units) + 1)))
		for _, u := range units {
			w.u16(u)
		}
		w.u16(0) // terminating NUL
		w.patch(info)
	}
	w.patch(list)
	return w.b
}

// ParseAlarmList decodes a DevAlarmList attribute value.
func ParseAlarmList(b []byte) ([]DevAlarm, error) {
	r := newReader(b, "alarm list")
	count := int(r.u16())
	s := r.sub(int(r.u16()), "alarm entries")
	var out []DevAlarm
	for i := 0; i < count && s.err == nil; i++ {
		a := DevAlarm{Source: s.u16(), Code: s.u16(), Type: s.u16(), State: s.u16()}
		a.Object = s.obj()
		infoID := s.u16()
		info := s.sub(int(s.u16()), "alarm info")
		if infoID == alertInfoStrings {
			info.u16()
			info.u32()
			info.u16()
			info.u16()
			n := int(info.u16())
			raw := info.bytes(n)
			units := make([]uint16, 0, n/2)
			for k := 0; k+1 < len(raw); k += 2 {
				u := uint16(raw[k])<<8 | uint16(raw[k+1])
				if u == 0 {
					break
				}
				units = append(units, u)
			}
			a.Text = string(utf16.Decode(units))
			if info.err != nil {
				return out, info.err
			}
		}
		if s.err == nil {
			out = append(out, a)
		}
	}
	if r.err != nil {
		return out, r.err
	}
	return out, s.err
}

// ParseString decodes a String attribute value (NOM_ATTR_ID_LABEL_STRING): a byte
// length and UTF-16 big-endian text, which may end in NULs.
func ParseString(b []byte) (string, bool) {
	r := newReader(b, "string")
	n := int(r.u16())
	raw := r.bytes(n)
	if r.err != nil {
		return "", false
	}
	units := make([]uint16, 0, n/2)
	for k := 0; k+1 < len(raw); k += 2 {
		u := uint16(raw[k])<<8 | uint16(raw[k+1])
		if u == 0 {
			break
		}
		units = append(units, u)
	}
	return string(utf16.Decode(units)), true
}

// EncodeString returns a String attribute value for s.
func EncodeString(s string) []byte {
	var w writer
	units := utf16.Encode([]rune(s))
	w.u16(uint16(2 * len(units)))
	for _, u := range units {
		w.u16(u)
	}
	return w.b
}
