// Package nonin reads Nonin pulse oximeters (OEM III modules, the 7500/9600-series
// bedside and portable oximeters) in serial data format 7, and format 2 which shares its
// packet layout: 75 five-byte frames a second at 9600 8N1, grouped in packets of 25 frames
// (1/3 s). Every frame carries one plethysmogram sample and a status byte; the fourth
// byte of the frames of a packet spells out pulse rate, SpO2 and their variants.
package nonin

import (
	"errors"
	"fmt"
)

// Data formats.
const (
	Format2 = 2 // [0x01, STATUS, PLETH(8 bit), FLOAT, CHK]
	Format7 = 7 // [STATUS, PLETH MSB, PLETH LSB, FLOAT, CHK]
)

// FrameLen is the size of a frame in both formats.
const FrameLen = 5

// FramesPerPacket and FrameRate are fixed by the formats.
const (
	FramesPerPacket = 25
	FrameRate       = 75 // frames (= pleth samples) per second
)

// Status byte bits.
const (
	StatusSync = 0x01 // first frame of a packet
	StatusGPRF = 0x02 // green perfusion (with RPRF: yellow)
	StatusRPRF = 0x04 // red perfusion
	StatusSNSA = 0x08 // sensor alarm: sensor gives unusable data
	StatusOOT  = 0x10 // out of track: no consecutive good pulses
	StatusARTF = 0x20 // artifact: a beat did not match the pulse interval
	StatusSNSD = 0x40 // sensor disconnected
	StatusBit7 = 0x80 // always set: marks the status byte
)

// Missing values as the oximeter sends them.
const (
	MissingHR   = 511
	MissingSpO2 = 127
)

// Float byte positions (0-based frame index within the packet).
const (
	idxHRMSB   = 0
	idxHRLSB   = 1
	idxSpO2    = 2
	idxRev     = 3
	idxSpO2D   = 8
	idxEHRMSB  = 13
	idxEHRLSB  = 14
	idxESpO2   = 15
	idxHRDMSB  = 19
	idxHRDLSB  = 20
	idxEHRDMSB = 21
	idxEHRDLSB = 22
)

// Frame is one decoded frame.
type Frame struct {
	Status uint8
	Pleth  uint16 // 16 bit in format 7, 8 bit in format 2
	Float  uint8
}

// Errors of ParseFrame.
var (
	ErrShort    = errors.New("nonin: short frame")
	ErrStart    = errors.New("nonin: bad start byte")
	ErrStatus   = errors.New("nonin: status byte without bit 7")
	ErrChecksum = errors.New("nonin: bad checksum")
)

// ParseFrame decodes the FrameLen bytes at the start of b in the given format.
func ParseFrame(b []byte, format int) (Frame, error) {
	if len(b) < FrameLen {
		return Frame{}, ErrShort
	}
	if sum := b[0] + b[1] + b[2] + b[3]; sum != b[4] {
		return Frame{}, fmt.Errorf("%w: got %#02x, sum %#02x", ErrChecksum, b[4], sum)
	}
	switch format {
	case Format2:
		if b[0] != 0x01 {
			return Frame{}, ErrStart
		}
		if b[1]&StatusBit7 == 0 {
			return Frame{}, ErrStatus
		}
		return Frame{Status: b[1], Pleth: uint16(b[2]), Float: b[3]}, nil
	default:
		if b[0]&StatusBit7 == 0 {
			return Frame{}, ErrStatus
		}
		return Frame{Status: b[0], Pleth: uint16(b[1])<<8 | uint16(b[2]), Float: b[3]}, nil
	}
}

// AppendFrame appends the encoding of f in format to dst.
func AppendFrame(dst []byte, f Frame, format int) []byte {
	var b [FrameLen]byte
	switch format {
	case Format2:
		b[0], b[1], b[2], b[3] = 0x01, f.Status|StatusBit7, byte(f.Pleth), f.Float
	default:
		b[0], b[1], b[2], b[3] = f.Status|StatusBit7, byte(f.Pleth>>8), byte(f.Pleth), f.Float
	}
	b[4] = b[0] + b[1] + b[2] + b[3]
	return append(dst, b[:]...)
}

// Packet is the numeric content of 25 frames.
type Packet struct {
	HR, EHR, HRD, EHRD int // pulse rate: 4-beat, 8-beat, display variants; MissingHR if none
	SpO2, ESpO2, SpO2D int // saturation variants; MissingSpO2 if none
	Revision           int
	Status             uint8 // OR of the status bytes of the packet's frames
}

func hr9(msb, lsb uint8) int { return int(msb&0x03)<<7 | int(lsb&0x7f) }

// DecodePacket interprets the float bytes of 25 frames.
func DecodePacket(frames *[FramesPerPacket]Frame) Packet {
	var p Packet
	fl := func(i int) uint8 { return frames[i].Float }
	p.HR = hr9(fl(idxHRMSB), fl(idxHRLSB))
	p.EHR = hr9(fl(idxEHRMSB), fl(idxEHRLSB))
	p.HRD = hr9(fl(idxHRDMSB), fl(idxHRDLSB))
	p.EHRD = hr9(fl(idxEHRDMSB), fl(idxEHRDLSB))
	p.SpO2 = int(fl(idxSpO2) & 0x7f)
	p.ESpO2 = int(fl(idxESpO2) & 0x7f)
	p.SpO2D = int(fl(idxSpO2D) & 0x7f)
	p.Revision = int(fl(idxRev))
	for i := range frames {
		p.Status |= frames[i].Status
	}
	return p
}

// EncodePacket returns the float bytes a packet carries for the given values, in frame
// order; reserved positions are 0.
func EncodePacket(hr, spo2, rev int) [FramesPerPacket]uint8 {
	var f [FramesPerPacket]uint8
	putHR := func(msb, lsb int) {
		f[msb] = uint8(hr>>7) & 0x03
		f[lsb] = uint8(hr) & 0x7f
	}
	putHR(idxHRMSB, idxHRLSB)
	putHR(idxEHRMSB, idxEHRLSB)
	putHR(idxHRDMSB, idxHRDLSB)
	putHR(idxEHRDMSB, idxEHRDLSB)
	for _, i := range []int{idxSpO2, idxSpO2D, idxESpO2, 9, 10, 16} {
		f[i] = uint8(spo2) & 0x7f
	}
	f[idxRev] = uint8(rev)
	return f
}
