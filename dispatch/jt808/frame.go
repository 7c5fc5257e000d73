// Package jt808 is the box's side of JT/T 808, the protocol Chinese vehicle terminals
// use to talk to dispatch and monitoring platforms, in its 2013 and 2019 editions:
// framing (0x7E flags, 0x7D escaping, XOR check code), the message header of both
// editions, sub-packages, the message bodies the ambulance needs, a terminal Session
// and a small Platform for tests and the simulator.
//
// All multi-byte integers are big-endian; times are BCD in China Standard Time
// (GMT+8) as the standard requires; strings are GBK.
package jt808

import (
	"bytes"
	"errors"
	"fmt"
)

// Edition is the edition of JT/T 808 a terminal speaks.
type Edition int

// Editions.
const (
	Edition2013 Edition = 2013 // 6-byte BCD phone number, no version byte
	Edition2019 Edition = 2019 // version flag in the body attribute, version byte, 10-byte BCD phone number
)

func (e Edition) String() string { return fmt.Sprintf("JT/T 808-%d", int(e)) }

const (
	flagByte   = 0x7E
	escapeByte = 0x7D

	// MaxBody is the largest body one packet carries: the attribute's length field has 10 bits.
	MaxBody = 1023
	// maxHeader is the 2019 header with sub-package fields.
	maxHeader = 2 + 2 + 1 + 10 + 2 + 4
	// MaxFrame bounds one escaped frame on the wire, flags included: every byte of the
	// largest packet escaped to two.
	MaxFrame = 2*(maxHeader+MaxBody+1) + 2

	attrLengthMask  = 0x03FF
	attrEncryptMask = 0x1C00
	attrSplit       = 0x2000
	attrVersion     = 0x4000
)

// Header is a message header.
type Header struct {
	ID      uint16
	Edition Edition
	// Version is the protocol version byte of the 2019 edition (1 for the first
	// revision); ignored for 2013.
	Version byte
	// Phone is the terminal's phone number (or terminal ID) in decimal digits, at most
	// 12 (2013) or 20 (2019); it is left-padded with zeros on the wire.
	Phone   string
	Serial  uint16
	Encrypt uint16 // the attribute's encryption bits (0 = none, 1 = RSA)
	// Packets is the number of sub-packages of a split message, 0 when not split;
	// Packet is this one's 1-based index.
	Packets, Packet uint16
}

// Message is a decoded packet: header and (possibly partial, when split) body.
type Message struct {
	Header
	Body []byte
}

// Errors the decoder returns; callers count them by kind.
var (
	ErrCheckCode = errors.New("jt808: wrong check code")
	ErrEscape    = errors.New("jt808: bad escape sequence")
	ErrShort     = errors.New("jt808: truncated packet")
	ErrTooLong   = errors.New("jt808: frame longer than the protocol allows")
	ErrPhone     = errors.New("jt808: phone number is not BCD digits")
)

// Escape escapes 0x7E and 0x7D for the wire.
func Escape(dst, src []byte) []byte {
	for _, b := range src {
		switch b {
		case flagByte:
			dst = append(dst, escapeByte, 0x02)
		case escapeByte:
			dst = append(dst, escapeByte, 0x01)
		default:
			dst = append(dst, b)
		}
	}
	return dst
}

// Unescape reverses Escape. A 0x7D not followed by 0x01 or 0x02 is an error: the
// frame was damaged and its content cannot be trusted.
func Unescape(src []byte) ([]byte, error) {
	out := make([]byte, 0, len(src))
	for i := 0; i < len(src); i++ {
		b := src[i]
		if b == flagByte {
			return nil, fmt.Errorf("%w: flag byte inside a frame at offset %d", ErrEscape, i)
		}
		if b != escapeByte {
			out = append(out, b)
			continue
		}
		if i+1 >= len(src) {
			return nil, fmt.Errorf("%w: 0x7d at the end of the frame", ErrEscape)
		}
		i++
		switch src[i] {
		case 0x01:
			out = append(out, escapeByte)
		case 0x02:
			out = append(out, flagByte)
		default:
			return nil, fmt.Errorf("%w: 0x7d 0x%02x at offset %d", ErrEscape, src[i], i-1)
		}
	}
	return out, nil
}

// CheckCode is the XOR of every byte of header and body.
func CheckCode(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

func phoneDigits(e Edition) int {
	if e == Edition2019 {
		return 20
	}
	return 12
}

// putBCD writes digits (decimal, left-padded with zeros to width bytes).
func putBCD(dst []byte, digits string, width int) ([]byte, error) {
	if len(digits) > 2*width {
		return nil, fmt.Errorf("%w: %q has more than %d digits", ErrPhone, digits, 2*width)
	}
	padded := make([]byte, 2*width)
	for i := range padded {
		padded[i] = '0'
	}
	copy(padded[2*width-len(digits):], digits)
	for i := 0; i < width; i++ {
		hi, lo := padded[2*i]-'0', padded[2*i+1]-'0'
		if hi > 9 || lo > 9 {
			return nil, fmt.Errorf("%w: %q", ErrPhone, digits)
		}
		dst = append(dst, hi<<4|lo)
	}
	return dst, nil
}

// bcdString reads BCD digits; a nibble above 9 is an error.
func bcdString(b []byte) (string, error) {
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		hi, lo := c>>4, c&0x0F
		if hi > 9 || lo > 9 {
			return "", fmt.Errorf("%w: % x", ErrPhone, b)
		}
		out = append(out, '0'+hi, '0'+lo)
	}
	return string(out), nil
}

// Encode frames one packet: header, body, check code, escaped, between flags. The
// body must fit one packet (MaxBody); split longer ones with Split.
func Encode(m Message) ([]byte, error) {
	if len(m.Body) > MaxBody {
		return nil, fmt.Errorf("jt808: encode 0x%04x: body of %d bytes exceeds %d; split it", m.ID, len(m.Body), MaxBody)
	}
	raw := make([]byte, 0, maxHeader+len(m.Body)+1)
	attr := uint16(len(m.Body)) | m.Encrypt<<10&attrEncryptMask
	if m.Packets > 0 {
		attr |= attrSplit
	}
	if m.Edition == Edition2019 {
		attr |= attrVersion
	}
	raw = append(raw, byte(m.ID>>8), byte(m.ID), byte(attr>>8), byte(attr))
	if m.Edition == Edition2019 {
		raw = append(raw, m.Version)
	}
	raw, err := putBCD(raw, m.Phone, phoneDigits(m.Edition)/2)
	if err != nil {
		return nil, fmt.Errorf("jt808: encode 0x%04x: %w", m.ID, err)
	}
	raw = append(raw, byte(m.Serial>>8), byte(m.Serial))
	if m.Packets > 0 {
		raw = append(raw, byte(m.Packets>>8), byte(m.Packets), byte(m.Packet>>8), byte(m.Packet))
	}
	raw = append(raw, m.Body...)
	raw = append(raw, CheckCode(raw))
	out := make([]byte, 0, len(raw)+len(raw)/8+2)
	out = append(out, flagByte)
	out = Escape(out, raw)
	return append(out, flagByte), nil
}

// Decode parses one frame, with or without its flag bytes: unescape, verify the check
// code, read the header of whichever edition the attribute announces, and check the
// body length.
func Decode(frame []byte) (Message, error) {
	frame = bytes.TrimPrefix(frame, []byte{flagByte})
	frame = bytes.TrimSuffix(frame, []byte{flagByte})
	if len(frame) > MaxFrame {
		return Message{}, ErrTooLong
	}
	raw, err := Unescape(frame)
	if err != nil {
		return Message{}, err
	}
	if len(raw) < 2+2+6+2+1 {
		return Message{}, fmt.Errorf("%w: %d bytes", ErrShort, len(raw))
	}
	body, check := raw[:len(raw)-1], raw[len(raw)-1]
	if got := CheckCode(body); got != check {
		return Message{}, fmt.Errorf("%w: computed 0x%02x, frame says 0x%02x", ErrCheckCode, got, check)
	}
	return decodeHeader(body)
}

func decodeHeader(raw []byte) (Message, error) {
	var m Message
	m.ID = uint16(raw[0])<<8 | uint16(raw[1])
	attr := uint16(raw[2])<<8 | uint16(raw[3])
	p := raw[4:]
	m.Edition = Edition2013
	if attr&attrVersion != 0 {
		m.Edition = Edition2019
		if len(p) < 1 {
			return m, fmt.Errorf("%w: 0x%04x header", ErrShort, m.ID)
		}
		m.Version, p = p[0], p[1:]
	}
	pw := phoneDigits(m.Edition) / 2
	if len(p) < pw+2 {
		return m, fmt.Errorf("%w: 0x%04x header", ErrShort, m.ID)
	}
	phone, err := bcdString(p[:pw])
	if err != nil {
		return m, fmt.Errorf("jt808: 0x%04x: %w", m.ID, err)
	}
	m.Phone = phone
	m.Serial = uint16(p[pw])<<8 | uint16(p[pw+1])
	p = p[pw+2:]
	m.Encrypt = (attr & attrEncryptMask) >> 10
	if attr&attrSplit != 0 {
		if len(p) < 4 {
			return m, fmt.Errorf("%w: 0x%04x sub-package fields", ErrShort, m.ID)
		}
		m.Packets = uint16(p[0])<<8 | uint16(p[1])
		m.Packet = uint16(p[2])<<8 | uint16(p[3])
		p = p[4:]
		if m.Packets == 0 || m.Packet == 0 || m.Packet > m.Packets {
			return m, fmt.Errorf("jt808: 0x%04x: sub-package %d of %d", m.ID, m.Packet, m.Packets)
		}
	}
	if n := int(attr & attrLengthMask); n != len(p) {
		return m, fmt.Errorf("%w: 0x%04x announces a body of %d bytes, carries %d", ErrShort, m.ID, n, len(p))
	}
	m.Body = append([]byte(nil), p...)
	return m, nil
}
