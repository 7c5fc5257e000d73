package jt808

import (
	"fmt"
	"math"
	"time"
)

// ChinaTime is GMT+8, the zone of every JT/T 808 timestamp.
var ChinaTime = time.FixedZone("CST", 8*3600)

// Alarm bits of a location report (a subset; the rest pass through as numbers).
const (
	AlarmEmergency  uint32 = 1 << 0
	AlarmOverspeed  uint32 = 1 << 1
	AlarmGNSSFault  uint32 = 1 << 4
	AlarmGNSSAntOff uint32 = 1 << 5
	AlarmPowerLow   uint32 = 1 << 7
)

// Status bits of a location report.
const (
	StatusACC     uint32 = 1 << 0
	StatusFixed   uint32 = 1 << 1 // positioned
	StatusSouth   uint32 = 1 << 2
	StatusWest    uint32 = 1 << 3
	StatusGPS     uint32 = 1 << 18
	StatusBeiDou  uint32 = 1 << 19
	StatusGLONASS uint32 = 1 << 20
	StatusGalileo uint32 = 1 << 21
)

// Additional item IDs the box writes and reads.
const (
	ItemMileage    byte = 0x01 // DWORD, 0.1 km
	ItemSpeed      byte = 0x03 // WORD, 0.1 km/h, from the vehicle's tachograph
	ItemSignal     byte = 0x30 // BYTE, wireless signal strength
	ItemSatellites byte = 0x31 // BYTE, GNSS satellites in use
)

// Location is the basic location information of 0x0200, 0x0201 and 0x0704: latitude
// and longitude in WGS-84 degrees (the standard asks for WGS-84), altitude in metres,
// speed in km/h, course in degrees from north.
type Location struct {
	Alarm, Status uint32
	Lat, Lon      float64
	Altitude      int16
	SpeedKmh      float64
	Course        uint16
	Time          time.Time

	// Additional items; Has* says which were present.
	MileageKm        float64
	HasMileage       bool
	RecordedSpeedKmh float64
	HasRecordedSpeed bool
	Signal           byte
	HasSignal        bool
	Satellites       byte
	HasSatellites    bool

	// Unknown counts items this package does not interpret (skipped, kept by ID in
	// Other); Truncated says the last item claimed more bytes than remained.
	Unknown   int
	Other     map[byte][]byte
	Truncated bool
}

// Marshal encodes the body of 0x0200 (and one item of 0x0704).
func (l Location) Marshal() []byte {
	status := l.Status &^ (StatusSouth | StatusWest)
	if l.Lat < 0 {
		status |= StatusSouth
	}
	if l.Lon < 0 {
		status |= StatusWest
	}
	b := putU32(putU32(make([]byte, 0, 48), l.Alarm), status)
	b = putU32(b, uint32(math.Round(math.Abs(l.Lat)*1e6)))
	b = putU32(b, uint32(math.Round(math.Abs(l.Lon)*1e6)))
	b = putU16(b, uint16(l.Altitude))
	b = putU16(b, uint16(math.Round(l.SpeedKmh*10)))
	b = putU16(b, l.Course)
	b = append(b, bcdTime(l.Time)...)
	if l.HasMileage {
		b = putU32(append(b, ItemMileage, 4), uint32(math.Round(l.MileageKm*10)))
	}
	if l.HasRecordedSpeed {
		b = putU16(append(b, ItemSpeed, 2), uint16(math.Round(l.RecordedSpeedKmh*10)))
	}
	if l.HasSignal {
		b = append(b, ItemSignal, 1, l.Signal)
	}
	if l.HasSatellites {
		b = append(b, ItemSatellites, 1, l.Satellites)
	}
	return b
}

func bcdTime(t time.Time) []byte {
	t = t.In(ChinaTime)
	v := []int{t.Year() % 100, int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second()}
	out := make([]byte, 6)
	for i, n := range v {
		out[i] = byte(n/10)<<4 | byte(n%10)
	}
	return out
}

func parseBCDTime(b []byte) (time.Time, error) {
	var v [6]int
	for i, c := range b {
		hi, lo := int(c>>4), int(c&0x0F)
		if hi > 9 || lo > 9 {
			return time.Time{}, fmt.Errorf("%w: time % x is not BCD", ErrBody, b)
		}
		v[i] = hi*10 + lo
	}
	if v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60 {
		return time.Time{}, fmt.Errorf("%w: time % x out of range", ErrBody, b)
	}
	return time.Date(2000+v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], 0, ChinaTime), nil
}

// ParseLocation decodes a location body. Additional items are parsed tolerantly: an
// unknown item is skipped and counted, an item of the wrong length for its ID is
// counted as unknown, and an item claiming more bytes than remain ends the list
// (Truncated) without failing the report, whose basic fields are intact.
func ParseLocation(body []byte) (Location, error) {
	r := &reader{b: body, id: IDLocation}
	var l Location
	l.Alarm, l.Status = r.u32("alarm"), r.u32("status")
	lat, lon := r.u32("latitude"), r.u32("longitude")
	l.Altitude = int16(r.u16("altitude"))
	l.SpeedKmh = float64(r.u16("speed")) / 10
	l.Course = r.u16("course")
	tb := r.take(6, "time")
	if r.err != nil {
		return l, r.err
	}
	t, err := parseBCDTime(tb)
	if err != nil {
		return l, err
	}
	l.Time = t
	l.Lat, l.Lon = float64(lat)/1e6, float64(lon)/1e6
	if l.Status&StatusSouth != 0 {
		l.Lat = -l.Lat
	}
	if l.Status&StatusWest != 0 {
		l.Lon = -l.Lon
	}
	l.parseItems(r.b)
	return l, nil
}

func (l *Location) parseItems(p []byte) {
	for len(p) > 0 {
		if len(p) < 2 || int(p[1]) > len(p)-2 {
			l.Truncated = true
			return
		}
		id, v := p[0], p[2:2+int(p[1])]
		p = p[2+int(p[1]):]
		switch {
		case id == ItemMileage && len(v) == 4:
			l.MileageKm, l.HasMileage = float64(uint32(v[0])<<24|uint32(v[1])<<16|uint32(v[2])<<8|uint32(v[3]))/10, true
		case id == ItemSpeed && len(v) == 2:
			l.RecordedSpeedKmh, l.HasRecordedSpeed = float64(uint16(v[0])<<8|uint16(v[1]))/10, true
		case id == ItemSignal && len(v) == 1:
			l.Signal, l.HasSignal = v[0], true
		case id == ItemSatellites && len(v) == 1:
			l.Satellites, l.HasSatellites = v[0], true
		default:
			l.Unknown++
			if l.Other == nil {
				l.Other = map[byte][]byte{}
			}
			l.Other[id] = append([]byte(nil), v...)
		}
	}
}

// LocationAnswer is 0x0201, the answer to a location query 0x8201.
type LocationAnswer struct {
	Serial   uint16
	Location Location
}

// Marshal encodes the body.
func (a LocationAnswer) Marshal() []byte {
	return append(putU16(nil, a.Serial), a.Location.Marshal()...)
}

// ParseLocationAnswer decodes a 0x0201 body.
func ParseLocationAnswer(body []byte) (LocationAnswer, error) {
	r := &reader{b: body, id: IDLocationAnswer}
	a := LocationAnswer{Serial: r.u16("serial")}
	if r.err != nil {
		return a, r.err
	}
	l, err := ParseLocation(r.b)
	a.Location = l
	return a, err
}

// Batch types of 0x0704.
const (
	BatchNormal    byte = 0
	BatchBlindZone byte = 1
)

// BatchLocation is 0x0704: location bodies uploaded together, each prefixed with its
// length; Type says whether they are a blind-zone backlog.
type BatchLocation struct {
	Type  byte
	Items [][]byte // encoded location bodies
}

// Marshal encodes the body.
func (b BatchLocation) Marshal() []byte {
	out := append(putU16(nil, uint16(len(b.Items))), b.Type)
	for _, it := range b.Items {
		out = append(putU16(out, uint16(len(it))), it...)
	}
	return out
}

// ParseBatchLocation decodes a 0x0704 body; the items stay encoded for ParseLocation.
func ParseBatchLocation(body []byte) (BatchLocation, error) {
	r := &reader{b: body, id: IDBatchLocation}
	n := int(r.u16("count"))
	b := BatchLocation{Type: r.u8("type")}
	for i := 0; i < n && r.err == nil; i++ {
		l := int(r.u16("item length"))
		if it := r.take(l, fmt.Sprintf("item %d of %d", i+1, n)); it != nil {
			b.Items = append(b.Items, it)
		}
	}
	return b, r.err
}
