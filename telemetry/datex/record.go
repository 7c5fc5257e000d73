package datex

import (
	"encoding/binary"
	"fmt"
	"time"
)

// HeaderLen is the size of the record header.
const HeaderLen = 40

// MaxSubrecords is the number of subrecord descriptors in a header.
const MaxSubrecords = 8

// Record main types (r_maintype).
const (
	MainPhysiological uint16 = 0 // DRI_MT_PHDB: numerics and their transmission requests
	MainWave          uint16 = 1 // DRI_MT_WAVE: waveform samples and their requests
	MainAlarm         uint16 = 4 // DRI_MT_ALARM: alarm status and its requests
	MainNetwork       uint16 = 5 // DRI_MT_NETWORK: network management (not used on serial)
)

// endOfList is the sr_type that terminates the subrecord descriptor list.
const endOfList = 0xFF

// DRI interface levels seen in the r_dri_level byte of monitors' records.
const (
	LevelAny  byte = 0    // requests: the monitor answers at its own level
	Level2001 byte = 0x07 // S/5 software 2001
	Level2005 byte = 0x09
	Level2015 byte = 0x0B // CARESCAPE B650 and later; the level of the committed capture
)

// Header is the 40-byte record header.
type Header struct {
	Len      uint16    // r_len: whole record, header included
	Number   byte      // r_nbr: sequence number, wraps
	DRILevel byte      // r_dri_level
	PlugID   uint16    // plug_id: the monitor's network plug (0 on serial)
	Time     time.Time // r_time: the monitor's clock, whole seconds (UTC epoch seconds)
	// Reserved holds reserved1, reserved2 and reserved3 as sent, so that a record read
	// and written back is byte-identical.
	Reserved [4]byte
	MainType uint16 // r_maintype
}

// Subrecord is one descriptor and its data.
type Subrecord struct {
	Type   byte   // sr_type; its meaning depends on the main type
	Offset uint16 // sr_offset from the end of the header
	Data   []byte // from Offset to the next subrecord (or the record end)
}

// Record is a decoded record.
type Record struct {
	Header
	Subrecords []Subrecord
}

// ParseRecord decodes a record (as returned by the Deframer, without checksum). It
// checks that r_len matches and that every subrecord offset lies inside the record;
// bytes beyond r_len are ignored, because requests from some tools carry zero padding.
func ParseRecord(b []byte) (Record, error) {
	var r Record
	if len(b) < HeaderLen {
		return r, fmt.Errorf("datex: record of %d bytes is shorter than the %d-byte header", len(b), HeaderLen)
	}
	h := &r.Header
	h.Len = binary.LittleEndian.Uint16(b[0:])
	if int(h.Len) < HeaderLen || int(h.Len) > len(b) {
		return r, fmt.Errorf("datex: r_len %d does not fit a record of %d bytes", h.Len, len(b))
	}
	b = b[:h.Len]
	h.Number = b[2]
	h.DRILevel = b[3]
	h.PlugID = binary.LittleEndian.Uint16(b[4:])
	h.Time = time.Unix(int64(binary.LittleEndian.Uint32(b[6:])), 0).UTC()
	copy(h.Reserved[:], b[10:14])
	h.MainType = binary.LittleEndian.Uint16(b[14:])
	data := b[HeaderLen:]
	type desc struct {
		off uint16
		typ byte
	}
	var ds []desc
	for i := 0; i < MaxSubrecords; i++ {
		p := 16 + 3*i
		d := desc{binary.LittleEndian.Uint16(b[p:]), b[p+2]}
		if d.typ == endOfList {
			break
		}
		if int(d.off) > len(data) {
			return r, fmt.Errorf("datex: subrecord %d (type %d) offset %d beyond the %d data bytes", i, d.typ, d.off, len(data))
		}
		if len(ds) > 0 && d.off < ds[len(ds)-1].off {
			return r, fmt.Errorf("datex: subrecord %d offset %d before the previous one (%d)", i, d.off, ds[len(ds)-1].off)
		}
		ds = append(ds, d)
	}
	for i, d := range ds {
		end := len(data)
		if i+1 < len(ds) {
			end = int(ds[i+1].off)
		}
		r.Subrecords = append(r.Subrecords, Subrecord{Type: d.typ, Offset: d.off, Data: data[d.off:end]})
	}
	return r, nil
}

// Marshal encodes the record. Len and the subrecord offsets are computed from the data;
// subrecords are laid out back to back in order.
func (r *Record) Marshal() ([]byte, error) {
	if len(r.Subrecords) > MaxSubrecords {
		return nil, fmt.Errorf("datex: %d subrecords, a record holds at most %d", len(r.Subrecords), MaxSubrecords)
	}
	n := HeaderLen
	for _, s := range r.Subrecords {
		n += len(s.Data)
	}
	if n > 0xFFFF {
		return nil, fmt.Errorf("datex: record of %d bytes too long", n)
	}
	b := make([]byte, HeaderLen, n)
	binary.LittleEndian.PutUint16(b[0:], uint16(n))
	b[2] = r.Number
	b[3] = r.DRILevel
	binary.LittleEndian.PutUint16(b[4:], r.PlugID)
	var t uint32
	if !r.Time.IsZero() {
		t = uint32(r.Time.Unix())
	}
	binary.LittleEndian.PutUint32(b[6:], t)
	copy(b[10:14], r.Reserved[:])
	binary.LittleEndian.PutUint16(b[14:], r.MainType)
	off := 0
	for i, s := range r.Subrecords {
		p := 16 + 3*i
		binary.LittleEndian.PutUint16(b[p:], uint16(off))
		b[p+2] = s.Type
		off += len(s.Data)
	}
	if len(r.Subrecords) < MaxSubrecords {
		b[16+3*len(r.Subrecords)+2] = endOfList
	}
	for _, s := range r.Subrecords {
		b = append(b, s.Data...)
	}
	r.Len = uint16(n)
	return b, nil
}
