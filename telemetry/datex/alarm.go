package datex

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Alarm priorities ("colors") of the displayed alarms.
const (
	AlarmNone   int16 = 0 // DRI_PR0: no alarm in this slot
	AlarmNotice int16 = 1 // DRI_PR1: white
	AlarmMedium int16 = 2 // DRI_PR2: yellow
	AlarmHigh   int16 = 3 // DRI_PR3: red
)

// AlarmSlots is the number of alarms the monitor displays and reports at once.
const AlarmSlots = 5

const (
	alarmTextLen   = 80
	alarmSlotLen   = 98 // text, text_changed, color, color_changed, 12 bytes of detail
	alarmHeaderLen = 10 // reserved, sound_on_off, reserved2, reserved3, silence_info
	// AlarmStatusLen is the size of an alarm status subrecord.
	AlarmStatusLen = alarmHeaderLen + AlarmSlots*alarmSlotLen + 10
)

// DisplayedAlarm is one alarm slot.
type DisplayedAlarm struct {
	Text         string
	TextChanged  bool
	Priority     int16 // AlarmNone … AlarmHigh
	ColorChanged bool
}

// AlarmMessage is the alarm status subrecord.
type AlarmMessage struct {
	SoundOn bool
	Silence int16 // silence_info: which alarms the user silenced
	Alarms  [AlarmSlots]DisplayedAlarm
}

// ParseAlarm decodes an alarm status subrecord.
func ParseAlarm(b []byte) (AlarmMessage, error) {
	var m AlarmMessage
	if len(b) < alarmHeaderLen+AlarmSlots*alarmSlotLen {
		return m, fmt.Errorf("datex: alarm status of %d bytes, want %d", len(b), AlarmStatusLen)
	}
	m.SoundOn = binary.LittleEndian.Uint16(b[2:]) != 0
	m.Silence = int16(binary.LittleEndian.Uint16(b[8:]))
	for i := range m.Alarms {
		s := b[alarmHeaderLen+i*alarmSlotLen:]
		text := s[:alarmTextLen]
		if n := bytes.IndexByte(text, 0); n >= 0 {
			text = text[:n]
		}
		m.Alarms[i] = DisplayedAlarm{
			Text:         latin1(text),
			TextChanged:  binary.LittleEndian.Uint16(s[80:]) != 0,
			Priority:     int16(binary.LittleEndian.Uint16(s[82:])),
			ColorChanged: binary.LittleEndian.Uint16(s[84:]) != 0,
		}
	}
	return m, nil
}

// Marshal encodes the subrecord.
func (m *AlarmMessage) Marshal() []byte {
	b := make([]byte, AlarmStatusLen)
	if m.SoundOn {
		binary.LittleEndian.PutUint16(b[2:], 1)
	}
	binary.LittleEndian.PutUint16(b[8:], uint16(m.Silence))
	for i, a := range m.Alarms {
		s := b[alarmHeaderLen+i*alarmSlotLen:]
		copy(s[:alarmTextLen-1], a.Text) // keep a terminating NUL
		if a.TextChanged {
			binary.LittleEndian.PutUint16(s[80:], 1)
		}
		binary.LittleEndian.PutUint16(s[82:], uint16(a.Priority))
		if a.ColorChanged {
			binary.LittleEndian.PutUint16(s[84:], 1)
		}
	}
	return b
}

// latin1 converts the monitor's 8-bit text to UTF-8.
func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}
