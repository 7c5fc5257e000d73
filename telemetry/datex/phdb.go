package datex

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Physiological subrecord types (sr_type in a MainPhysiological record).
const (
	PhRequest  byte = 0 // DRI_PH_XMIT_REQ: a transmission request from the box
	PhDisplay  byte = 1 // DRI_PH_DISPL: the values on the monitor's screen
	PhTrend10s byte = 2 // DRI_PH_10S_TREND
	PhTrend60s byte = 3 // DRI_PH_60S_TREND
	PhAuxInfo  byte = 4 // DRI_PH_AUX_INFO
)

// Physiological data classes (bits 8-11 of cl_drilvl_subt).
const (
	ClassBasic byte = 0
	ClassExt1  byte = 1
	ClassExt2  byte = 2
	ClassExt3  byte = 3
)

// PhdbLen is the size of one physiological subrecord: 4-byte time, 270-byte class
// data, marker, reserved and the 16-bit class / DRI level / subtype word.
const PhdbLen = 278

const classLen = 270

// Special values of 16-bit measurement data. Anything below InvalidLimit carries no
// measurement.
const (
	InvalidLimit  = -32001
	NoData        = -32767 // DATA_INVALID: there is no valid data
	NotUpdated    = -32766 // DATA_NOT_UPDATED
	Discontinuity = -32765 // DATA_DISCONT: calibration and the like
	UnderRange    = -32764 // DATA_UNDER_RANGE
	OverRange     = -32763 // DATA_OVER_RANGE
	NotCalibrated = -32762 // DATA_NOT_CALIBRATED
)

// Valid reports whether a 16-bit measurement value is a measurement.
func Valid(v int16) bool { return int(v) > InvalidLimit }

// InvalidReason names the special value v, for logs and events.
func InvalidReason(v int16) string {
	switch int(v) {
	case NoData:
		return "no data"
	case NotUpdated:
		return "not updated"
	case Discontinuity:
		return "discontinuity"
	case UnderRange:
		return "under range"
	case OverRange:
		return "over range"
	case NotCalibrated:
		return "not calibrated"
	}
	if Valid(v) {
		return "valid"
	}
	return fmt.Sprintf("invalid (%d)", v)
}

// Group status bits (low bits of a group header's status word).
const (
	GroupExists uint32 = 1 << 0 // a module for this group is plugged in
	GroupActive uint32 = 1 << 1 // the module is measuring
)

// GroupHeader heads each measurement group of the basic class.
type GroupHeader struct {
	Status uint32
	Label  uint16 // label_info: e.g. the invasive pressure site, the temperature site
}

// Present reports whether the group's module exists and measures.
func (g GroupHeader) Present() bool {
	return g.Status&(GroupExists|GroupActive) == GroupExists|GroupActive
}

// Invasive pressure site labels (label_info of the pressure groups).
const (
	PressNone  uint16 = 0
	PressART   uint16 = 1
	PressCVP   uint16 = 2
	PressPA    uint16 = 3
	PressRAP   uint16 = 4
	PressRVP   uint16 = 5
	PressLAP   uint16 = 6
	PressICP   uint16 = 7
	PressABP   uint16 = 8
	PressP1    uint16 = 9
	PressP2    uint16 = 10
	PressP3    uint16 = 11
	PressP4    uint16 = 12
	PressP5    uint16 = 13
	PressP6    uint16 = 14
	PressUAC   uint16 = 15
	PressUVC   uint16 = 16
	PressFEM   uint16 = 17
	PressPAWed uint16 = 18
)

// Pressure is an invasive or non-invasive pressure group: values in 1/100 mmHg, the
// pulse rate it counts in 1/min.
type Pressure struct {
	GroupHeader
	Sys, Dia, Mean, HR int16
}

// Basic is the basic physiological data class ("basic_phdb"), the displayed numerics
// every S/5 sends. Units are those of the record: 1/min for rates, 1/100 of the unit for
// everything else (mmHg, %, °C), and 1/10 mmHg for the ambient pressure.
type Basic struct {
	ECG struct {
		GroupHeader
		HR, ST1, ST2, ST3, ImpRR int16
	}
	P    [6]Pressure // P1..P4 in the first block, P5 and P6 after the SvO2 group
	NIBP Pressure
	T    [4]struct {
		GroupHeader
		Temp int16
	}
	SpO2 struct {
		GroupHeader
		SpO2, PR, IRAmp, SvO2 int16
	}
	CO2 struct {
		GroupHeader
		Et, Fi, RR, AmbPress int16
	}
	O2, N2O struct {
		GroupHeader
		Et, Fi int16
	}
	AA struct {
		GroupHeader
		Et, Fi, MACSum int16
	}
	FlowVol struct {
		GroupHeader
		RR, PPeak, PEEP, PPlat, TVInsp, TVExp, Compliance, MVExp int16
	}
	COWedge struct {
		GroupHeader
		CO, BloodTemp, RightEF, PCWP int16
	}
	NMT struct {
		GroupHeader
		T1, TRatio, PTC int16
	}
	ECGExtra struct{ HR, HRMax, HRMin int16 }
	SvO2     struct {
		GroupHeader
		SvO2 int16
	}
}

// Phdb is one physiological subrecord.
type Phdb struct {
	Time     time.Time // the monitor's time of the values
	Class    byte
	Subtype  byte // PhDisplay, PhTrend10s, …
	DRILevel byte
	Marker   byte
	Basic    *Basic // set when Class is ClassBasic
	Raw      []byte // the 270 class bytes, for the classes this package does not decode
}

// fieldCursor walks the little-endian class data.
type fieldCursor struct {
	b   []byte
	off int
}

func (c *fieldCursor) i16(v *int16) { *v = int16(binary.LittleEndian.Uint16(c.b[c.off:])); c.off += 2 }
func (c *fieldCursor) hdr(g *GroupHeader) {
	g.Status = binary.LittleEndian.Uint32(c.b[c.off:])
	g.Label = binary.LittleEndian.Uint16(c.b[c.off+4:])
	c.off += 6
}

type fieldWriter struct {
	b   []byte
	off int
}

func (w *fieldWriter) i16(v *int16) {
	binary.LittleEndian.PutUint16(w.b[w.off:], uint16(*v))
	w.off += 2
}
func (w *fieldWriter) hdr(g *GroupHeader) {
	binary.LittleEndian.PutUint32(w.b[w.off:], g.Status)
	binary.LittleEndian.PutUint16(w.b[w.off+4:], g.Label)
	w.off += 6
}

// walk visits the fields of the basic class in wire order with the given accessors, so
// that decoding and encoding share one description of the layout.
func (bs *Basic) walk(hdr func(*GroupHeader), i16 func(*int16)) {
	pressure := func(p *Pressure) { hdr(&p.GroupHeader); i16(&p.Sys); i16(&p.Dia); i16(&p.Mean); i16(&p.HR) }
	hdr(&bs.ECG.GroupHeader)
	for _, v := range []*int16{&bs.ECG.HR, &bs.ECG.ST1, &bs.ECG.ST2, &bs.ECG.ST3, &bs.ECG.ImpRR} {
		i16(v)
	}
	for i := 0; i < 4; i++ {
		pressure(&bs.P[i])
	}
	pressure(&bs.NIBP)
	for i := range bs.T {
		hdr(&bs.T[i].GroupHeader)
		i16(&bs.T[i].Temp)
	}
	hdr(&bs.SpO2.GroupHeader)
	for _, v := range []*int16{&bs.SpO2.SpO2, &bs.SpO2.PR, &bs.SpO2.IRAmp, &bs.SpO2.SvO2} {
		i16(v)
	}
	hdr(&bs.CO2.GroupHeader)
	for _, v := range []*int16{&bs.CO2.Et, &bs.CO2.Fi, &bs.CO2.RR, &bs.CO2.AmbPress} {
		i16(v)
	}
	hdr(&bs.O2.GroupHeader)
	i16(&bs.O2.Et)
	i16(&bs.O2.Fi)
	hdr(&bs.N2O.GroupHeader)
	i16(&bs.N2O.Et)
	i16(&bs.N2O.Fi)
	hdr(&bs.AA.GroupHeader)
	for _, v := range []*int16{&bs.AA.Et, &bs.AA.Fi, &bs.AA.MACSum} {
		i16(v)
	}
	hdr(&bs.FlowVol.GroupHeader)
	f := &bs.FlowVol
	for _, v := range []*int16{&f.RR, &f.PPeak, &f.PEEP, &f.PPlat, &f.TVInsp, &f.TVExp, &f.Compliance, &f.MVExp} {
		i16(v)
	}
	hdr(&bs.COWedge.GroupHeader)
	for _, v := range []*int16{&bs.COWedge.CO, &bs.COWedge.BloodTemp, &bs.COWedge.RightEF, &bs.COWedge.PCWP} {
		i16(v)
	}
	hdr(&bs.NMT.GroupHeader)
	for _, v := range []*int16{&bs.NMT.T1, &bs.NMT.TRatio, &bs.NMT.PTC} {
		i16(v)
	}
	for _, v := range []*int16{&bs.ECGExtra.HR, &bs.ECGExtra.HRMax, &bs.ECGExtra.HRMin} {
		i16(v)
	}
	hdr(&bs.SvO2.GroupHeader)
	i16(&bs.SvO2.SvO2)
	pressure(&bs.P[4])
	pressure(&bs.P[5])
	// two reserved bytes end the 270-byte class
}

// decodeBasic decodes 270 bytes of basic class data.
func decodeBasic(b []byte) *Basic {
	bs := new(Basic)
	c := fieldCursor{b: b}
	bs.walk(c.hdr, c.i16)
	return bs
}

func (bs *Basic) encode(b []byte) {
	w := fieldWriter{b: b}
	bs.walk(w.hdr, w.i16)
}

// ParsePhdb decodes one physiological subrecord.
func ParsePhdb(b []byte) (Phdb, error) {
	var p Phdb
	if len(b) < PhdbLen {
		return p, fmt.Errorf("datex: physiological subrecord of %d bytes, want %d", len(b), PhdbLen)
	}
	p.Time = time.Unix(int64(binary.LittleEndian.Uint32(b)), 0).UTC()
	p.Raw = b[4 : 4+classLen]
	p.Marker = b[274]
	w := binary.LittleEndian.Uint16(b[276:])
	p.Subtype = byte(w & 0x0F)
	p.DRILevel = byte(w>>4) & 0x0F
	p.Class = byte(w>>8) & 0x0F
	if p.Class == ClassBasic {
		p.Basic = decodeBasic(p.Raw)
	}
	return p, nil
}

// Marshal encodes the subrecord; for ClassBasic the data comes from Basic, otherwise
// from Raw.
func (p *Phdb) Marshal() []byte {
	b := make([]byte, PhdbLen)
	binary.LittleEndian.PutUint32(b, uint32(p.Time.Unix()))
	if p.Class == ClassBasic && p.Basic != nil {
		p.Basic.encode(b[4 : 4+classLen])
	} else {
		copy(b[4:4+classLen], p.Raw)
	}
	b[274] = p.Marker
	w := uint16(p.Subtype&0x0F) | uint16(p.DRILevel&0x0F)<<4 | uint16(p.Class&0x0F)<<8
	binary.LittleEndian.PutUint16(b[276:], w)
	return b
}

// NewBasic returns a basic class with every group absent and every value NoData, as a
// monitor sends for modules that are not plugged in.
func NewBasic() *Basic {
	bs := new(Basic)
	bs.walk(func(*GroupHeader) {}, func(v *int16) { *v = NoData })
	return bs
}
