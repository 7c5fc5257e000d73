package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Command fields (PS3.7 E.1).
const (
	CStoreRQ  uint16 = 0x0001
	CStoreRSP uint16 = 0x8001
	CEchoRQ   uint16 = 0x0030
	CEchoRSP  uint16 = 0x8030
)

// noDataSet is the Command Data Set Type that means no dataset follows.
const noDataSet uint16 = 0x0101

// maxCommand bounds a command set; real ones are a few hundred bytes.
const maxCommand = 64 << 10

// ErrMalformedCommand wraps errors about command sets that do not parse.
var ErrMalformedCommand = errors.New("malformed DIMSE command")

// Command is a DIMSE command set (group 0000) with the fields C-ECHO and C-STORE use.
type Command struct {
	AffectedSOPClassUID    string // (0000,0002)
	Field                  uint16 // (0000,0100)
	MessageID              uint16 // (0000,0110)
	RespondedTo            uint16 // (0000,0120)
	MoveDestination        string // (0000,0600)
	Priority               uint16 // (0000,0700)
	DataSetType            uint16 // (0000,0800)
	Status                 uint16 // (0000,0900)
	ErrorComment           string // (0000,0902)
	AffectedSOPInstanceUID string // (0000,1000)
	MoveOriginatorAE       string // (0000,1030)
	MoveOriginatorID       uint16 // (0000,1031)

	hasMoveOriginatorID bool
}

// HasDataSet reports whether a dataset follows the command.
func (c *Command) HasDataSet() bool { return c.DataSetType != noDataSet }

func (c *Command) isResponse() bool { return c.Field&0x8000 != 0 }

// Encode returns the command set in implicit VR little endian with its group length.
func (c *Command) Encode() []byte {
	var b []byte
	str := func(tag uint32, s string, uid bool) {
		if s == "" {
			return
		}
		v := []byte(s)
		if len(v)%2 == 1 {
			if uid {
				v = append(v, 0)
			} else {
				v = append(v, ' ')
			}
		}
		b = binary.LittleEndian.AppendUint32(b, tag<<16|tag>>16)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	us := func(tag uint32, v uint16) {
		b = binary.LittleEndian.AppendUint32(b, tag<<16|tag>>16)
		b = binary.LittleEndian.AppendUint32(b, 2)
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	str(0x00000002, c.AffectedSOPClassUID, true)
	us(0x00000100, c.Field)
	if c.isResponse() {
		us(0x00000120, c.RespondedTo)
	} else {
		us(0x00000110, c.MessageID)
	}
	str(0x00000600, c.MoveDestination, false)
	if c.Field == CStoreRQ {
		us(0x00000700, c.Priority)
	}
	us(0x00000800, c.DataSetType)
	if c.isResponse() {
		us(0x00000900, c.Status)
		if len(c.ErrorComment) > 64 {
			c.ErrorComment = c.ErrorComment[:64]
		}
		str(0x00000902, c.ErrorComment, false)
	}
	str(0x00001000, c.AffectedSOPInstanceUID, true)
	str(0x00001030, c.MoveOriginatorAE, false)
	if c.hasMoveOriginatorID {
		us(0x00001031, c.MoveOriginatorID)
	}
	out := make([]byte, 12, 12+len(b))
	binary.LittleEndian.PutUint32(out[0:], 0x00000000)
	binary.LittleEndian.PutUint32(out[4:], 4)
	binary.LittleEndian.PutUint32(out[8:], uint32(len(b)))
	return append(out, b...)
}

// DecodeCommand parses a command set. Elements it does not know are skipped.
func DecodeCommand(b []byte) (*Command, error) {
	c := &Command{DataSetType: noDataSet}
	seenField := false
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: element header truncated", ErrMalformedCommand)
		}
		group := binary.LittleEndian.Uint16(b[0:])
		elem := binary.LittleEndian.Uint16(b[2:])
		n := binary.LittleEndian.Uint32(b[4:])
		if group != 0 {
			return nil, fmt.Errorf("%w: element (%04X,%04X) outside group 0000", ErrMalformedCommand, group, elem)
		}
		if uint64(n) > uint64(len(b)-8) {
			return nil, fmt.Errorf("%w: element (0000,%04X) of %d bytes overruns the command", ErrMalformedCommand, elem, n)
		}
		v := b[8 : 8+n]
		b = b[8+n:]
		u16 := func() (uint16, error) {
			if len(v) != 2 {
				return 0, fmt.Errorf("%w: element (0000,%04X) US of %d bytes", ErrMalformedCommand, elem, len(v))
			}
			return binary.LittleEndian.Uint16(v), nil
		}
		var err error
		switch elem {
		case 0x0002:
			c.AffectedSOPClassUID = strings.TrimRight(string(v), "\x00 ")
		case 0x0100:
			c.Field, err = u16()
			seenField = true
		case 0x0110:
			c.MessageID, err = u16()
		case 0x0120:
			c.RespondedTo, err = u16()
		case 0x0600:
			c.MoveDestination = strings.TrimSpace(string(v))
		case 0x0700:
			c.Priority, err = u16()
		case 0x0800:
			c.DataSetType, err = u16()
		case 0x0900:
			c.Status, err = u16()
		case 0x0902:
			c.ErrorComment = strings.TrimSpace(string(v))
		case 0x1000:
			c.AffectedSOPInstanceUID = strings.TrimRight(string(v), "\x00 ")
		case 0x1030:
			c.MoveOriginatorAE = strings.TrimSpace(string(v))
		case 0x1031:
			c.MoveOriginatorID, err = u16()
			c.hasMoveOriginatorID = true
		}
		if err != nil {
			return nil, err
		}
	}
	if !seenField {
		return nil, fmt.Errorf("%w: no Command Field (0000,0100)", ErrMalformedCommand)
	}
	return c, nil
}
