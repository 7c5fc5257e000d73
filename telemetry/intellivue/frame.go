// Package intellivue speaks the Philips IntelliVue Data Export protocol over the MIB/RS232
// interface: 115200 baud, 8 data bits, no parity, 1 stop bit.
//
// Each message travels in a frame
//
//	0xC0  0x11 0x01 len(2, BE)  user data  FCS(2, LSB first)  0xC1
//
// where 0xC0, 0xC1 and 0x7D inside the frame are sent as 0x7D, b^0x20 and the FCS is the
// 16-bit frame check sequence of RFC 1662 (PPP) over header and user data. The user data
// is a session-layer message: association request and response, release, abort, or a
// data message carrying remote operations (ROSE) on the monitor's objects — the MDS
// create event, polls for numerics and waves and their results.
//
// The package holds the framing, the message codecs, the driver that plays the box's
// half (associate, answer the MDS create event, extended polls, keep-alive, release) and
// a simulator that plays the monitor's half.
package intellivue

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame delimiters and the transparency escape.
const (
	bof    = 0xC0
	eof    = 0xC1
	esc    = 0x7D
	escXOR = 0x20
)

// Frame header fields for Data Export.
const (
	ProtocolDataExport = 0x11
	MsgTypeData        = 0x01
	frameHeaderLen     = 4
)

// MaxUserData bounds a frame's user data. The monitor's largest transmit unit is
// negotiated in the association (typically 1000-2500 bytes); the margin keeps a lost EOF
// from collecting a whole stream.
const MaxUserData = 8192

// FCS computes the RFC 1662 frame check sequence (CRC-16/X-25: reflected polynomial
// 0x8408, initial 0xFFFF, final complement).
func FCS(data []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range data {
		crc ^= uint16(b)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x8408
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// AppendFrame frames user data for the wire.
func AppendFrame(dst, userData []byte) []byte {
	hdr := []byte{ProtocolDataExport, MsgTypeData, byte(len(userData) >> 8), byte(len(userData))}
	fcs := FCS(append(append([]byte(nil), hdr...), userData...))
	dst = append(dst, bof)
	dst = appendEscaped(dst, hdr)
	dst = appendEscaped(dst, userData)
	dst = appendEscaped(dst, []byte{byte(fcs), byte(fcs >> 8)})
	return append(dst, eof)
}

// Frame returns userData framed.
func Frame(userData []byte) []byte { return AppendFrame(make([]byte, 0, len(userData)+12), userData) }

func appendEscaped(dst, p []byte) []byte {
	for _, b := range p {
		if b == bof || b == eof || b == esc {
			dst = append(dst, esc, b^escXOR)
			continue
		}
		dst = append(dst, b)
	}
	return dst
}

// FrameError describes a dropped frame; the deframer has resynchronised.
type FrameError struct {
	Reason string // "fcs", "too long", "too short", "length", "header", "bad escape"
	Len    int
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("intellivue: frame of %d bytes dropped: %s", e.Len, e.Reason)
}

// IsFrameError reports whether err is a dropped frame.
func IsFrameError(err error) bool {
	var fe *FrameError
	return errors.As(err, &fe)
}

// Deframer splits a byte stream into user data of valid frames. It owns no goroutine.
type Deframer struct {
	buf     []byte
	inFrame bool
	esc     bool
	// Skipped counts bytes outside any frame.
	Skipped uint64
}

// Feed consumes p, calling msg with the user data of each good frame (valid only during
// the call) and bad for each dropped one.
func (d *Deframer) Feed(p []byte, msg func([]byte), bad func(*FrameError)) {
	for _, b := range p {
		switch {
		case b == bof:
			if d.inFrame && len(d.buf) > 0 {
				bad(&FrameError{Reason: "no end of frame", Len: len(d.buf)})
			}
			d.inFrame, d.esc, d.buf = true, false, d.buf[:0]
			continue
		case !d.inFrame:
			d.Skipped++
			continue
		case b == eof:
			d.finish(msg, bad)
			d.inFrame = false
			continue
		case d.esc:
			d.esc = false
			b ^= escXOR
		case b == esc:
			d.esc = true
			continue
		}
		if len(d.buf) >= frameHeaderLen+MaxUserData+2 {
			bad(&FrameError{Reason: "too long", Len: len(d.buf)})
			d.inFrame, d.buf = false, d.buf[:0]
			continue
		}
		d.buf = append(d.buf, b)
	}
}

func (d *Deframer) finish(msg func([]byte), bad func(*FrameError)) {
	n := len(d.buf)
	switch {
	case d.esc:
		bad(&FrameError{Reason: "bad escape", Len: n})
	case n < frameHeaderLen+2:
		bad(&FrameError{Reason: "too short", Len: n})
	case FCS(d.buf[:n-2]) != binary.LittleEndian.Uint16(d.buf[n-2:]):
		bad(&FrameError{Reason: "fcs", Len: n})
	case d.buf[0] != ProtocolDataExport || d.buf[1] != MsgTypeData:
		bad(&FrameError{Reason: "header", Len: n})
	case int(binary.BigEndian.Uint16(d.buf[2:])) != n-frameHeaderLen-2:
		bad(&FrameError{Reason: "length", Len: n})
	default:
		msg(d.buf[frameHeaderLen : n-2])
	}
}
