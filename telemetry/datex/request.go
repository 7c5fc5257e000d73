package datex

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Class request bits of a physiological data request (phdb_class_bf). The basic class
// comes unless it is denied.
const (
	ClassDenyBasic uint32 = 0x01
	ClassReqExt1   uint32 = 0x02
	ClassReqExt2   uint32 = 0x04
	ClassReqExt3   uint32 = 0x08
)

// PhdbRequestLen is the size of a physiological data request subrecord.
const PhdbRequestLen = 9

// PhdbRequest asks the monitor for physiological data: a record type (PhDisplay, a
// trend), a period in seconds (0 sends once / stops a subscription) and the classes.
type PhdbRequest struct {
	RecordType byte
	Interval   int16 // seconds; the S/5 sends displayed values at most every 5 s
	Classes    uint32
}

// Marshal encodes the request subrecord.
func (q PhdbRequest) Marshal() []byte {
	b := make([]byte, PhdbRequestLen)
	b[0] = q.RecordType
	binary.LittleEndian.PutUint16(b[1:], uint16(q.Interval))
	binary.LittleEndian.PutUint32(b[3:], q.Classes)
	return b
}

// ParsePhdbRequest decodes a request subrecord.
func ParsePhdbRequest(b []byte) (PhdbRequest, error) {
	if len(b) < PhdbRequestLen {
		return PhdbRequest{}, fmt.Errorf("datex: physiological request of %d bytes, want %d", len(b), PhdbRequestLen)
	}
	return PhdbRequest{
		RecordType: b[0],
		Interval:   int16(binary.LittleEndian.Uint16(b[1:])),
		Classes:    binary.LittleEndian.Uint32(b[3:]),
	}, nil
}

// Waveform request types.
const (
	WaveStart int16 = 0 // WF_REQ_CONT_START
	WaveStop  int16 = 1 // WF_REQ_CONT_STOP
)

// WaveRequestLen is the size of a waveform request subrecord as GE's own tools send it.
// Older third-party tools send 32 bytes; the decoder accepts anything from 12 bytes.
const WaveRequestLen = 48

// WaveRequest starts or stops continuous waveforms.
type WaveRequest struct {
	Type     int16
	Reserved uint16 // "res": GE's tools send 5
	Waves    []byte // up to MaxWaves waveform types; stop requests may list none (all)
}

// Marshal encodes the request subrecord.
func (q WaveRequest) Marshal() ([]byte, error) {
	if len(q.Waves) > MaxWaves {
		return nil, fmt.Errorf("datex: waveform request for %d waves, at most %d", len(q.Waves), MaxWaves)
	}
	b := make([]byte, WaveRequestLen)
	binary.LittleEndian.PutUint16(b, uint16(q.Type))
	binary.LittleEndian.PutUint16(b[2:], q.Reserved)
	copy(b[4:12], q.Waves)
	if len(q.Waves) < MaxWaves {
		b[4+len(q.Waves)] = endOfList
	}
	return b, nil
}

// ParseWaveRequest decodes a waveform request subrecord.
func ParseWaveRequest(b []byte) (WaveRequest, error) {
	if len(b) < 12 {
		return WaveRequest{}, fmt.Errorf("datex: waveform request of %d bytes, want at least 12", len(b))
	}
	q := WaveRequest{Type: int16(binary.LittleEndian.Uint16(b)), Reserved: binary.LittleEndian.Uint16(b[2:])}
	for _, t := range b[4:12] {
		if t == endOfList {
			break
		}
		q.Waves = append(q.Waves, t)
	}
	return q, nil
}

// Alarm subrecord types and commands.
const (
	AlarmRequest byte = 0 // a command from the box
	AlarmStatus  byte = 1 // DRI_AL_STATUS: the monitor's displayed alarms

	AlarmXmitStatus    int16 = 0 // send the status once
	AlarmEnterDiffMode int16 = 2 // send the status whenever it changes
	AlarmExitDiffMode  int16 = 3
)

// AlarmRequestLen is the size of an alarm command subrecord.
const AlarmRequestLen = 12

// MarshalAlarmRequest encodes an alarm command subrecord.
func MarshalAlarmRequest(cmd int16) []byte {
	b := make([]byte, AlarmRequestLen)
	binary.LittleEndian.PutUint16(b, uint16(cmd))
	return b
}

// ParseAlarmRequest decodes an alarm command subrecord.
func ParseAlarmRequest(b []byte) (int16, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("datex: alarm request of %d bytes", len(b))
	}
	return int16(binary.LittleEndian.Uint16(b)), nil
}

// RequestRecord wraps one request subrecord in a record with the given main type. The
// header carries the box's clock and DRI level 0 ("answer at your own level"), as GE's
// tools do.
func RequestRecord(main uint16, subType byte, sub []byte, now time.Time) ([]byte, error) {
	r := Record{Header: Header{MainType: main, Time: now}, Subrecords: []Subrecord{{Type: subType, Data: sub}}}
	return r.Marshal()
}
