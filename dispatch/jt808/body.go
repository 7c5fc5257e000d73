package jt808

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// Message IDs this package speaks. Terminal to platform are 0x0xxx, platform to
// terminal 0x8xxx.
const (
	IDTerminalResponse  uint16 = 0x0001
	IDHeartbeat         uint16 = 0x0002
	IDRegister          uint16 = 0x0100
	IDAuthenticate      uint16 = 0x0102
	IDParamsResponse    uint16 = 0x0104
	IDLocation          uint16 = 0x0200
	IDLocationAnswer    uint16 = 0x0201
	IDBatchLocation     uint16 = 0x0704
	IDPlatformResponse  uint16 = 0x8001
	IDResendRequest     uint16 = 0x8003
	IDRegisterResponse  uint16 = 0x8100
	IDSetParams         uint16 = 0x8103
	IDQueryParams       uint16 = 0x8104
	IDLocationQuery     uint16 = 0x8201
	IDTemporaryTracking uint16 = 0x8202
	IDTextMessage       uint16 = 0x8300
)

// Result codes of the general responses 0x0001 and 0x8001.
const (
	ResultOK          byte = 0
	ResultFailure     byte = 1
	ResultBadMessage  byte = 2
	ResultUnsupported byte = 3
	ResultAlarmAck    byte = 4 // 0x8001 only
)

// ErrBody marks a body that does not parse.
var ErrBody = errors.New("jt808: malformed body")

// reader walks a body; the first short read sets err and every later read returns zero.
type reader struct {
	b   []byte
	err error
	id  uint16
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = fmt.Errorf("%w: 0x%04x: %s needs %d bytes, %d left", ErrBody, r.id, what, n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8(what string) byte {
	b := r.take(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16(what string) uint16 {
	b := r.take(2, what)
	if b == nil {
		return 0
	}
	return uint16(b[0])<<8 | uint16(b[1])
}

func (r *reader) u32(what string) uint32 {
	b := r.take(4, what)
	if b == nil {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func putU16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }
func putU32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// GBK converts text to GBK, the standard's character set; characters GBK lacks
// become '?', so a crew message is never refused for one odd character.
func GBK(s string) []byte {
	out, err := simplifiedchinese.GBK.NewEncoder().String(s)
	if err != nil {
		var b strings.Builder
		enc := simplifiedchinese.GBK.NewEncoder()
		for _, r := range s {
			if e, err := enc.String(string(r)); err == nil {
				b.WriteString(e)
			} else {
				b.WriteByte('?')
			}
		}
		return []byte(b.String())
	}
	return []byte(out)
}

// FromGBK converts GBK bytes to text; undecodable bytes become U+FFFD.
func FromGBK(b []byte) string {
	out, err := simplifiedchinese.GBK.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(out)
}

// fixed pads or cuts GBK text to n bytes, NUL-padded, as the register message's
// fixed-width fields are.
func fixed(s string, n int) []byte {
	b := GBK(s)
	if len(b) > n {
		b = b[:n]
	}
	out := make([]byte, n)
	copy(out, b)
	return out
}

func unfixed(b []byte) string { return FromGBK([]byte(strings.TrimRight(string(b), "\x00 "))) }

// GeneralResponse is 0x0001 (terminal) and 0x8001 (platform): the answer to the
// message with serial Serial and ID ID.
type GeneralResponse struct {
	Serial uint16
	ID     uint16
	Result byte
}

// Marshal encodes the body.
func (g GeneralResponse) Marshal() []byte {
	return append(putU16(putU16(nil, g.Serial), g.ID), g.Result)
}

// ParseGeneralResponse decodes a 0x0001 or 0x8001 body.
func ParseGeneralResponse(body []byte) (GeneralResponse, error) {
	r := &reader{b: body, id: IDPlatformResponse}
	g := GeneralResponse{Serial: r.u16("serial"), ID: r.u16("message ID"), Result: r.u8("result")}
	return g, r.err
}

// Register is 0x0100. Field widths differ by edition: maker 5/11, model 20/30,
// terminal ID 7/30 bytes (2013/2019).
type Register struct {
	Province, City uint16
	Maker          string
	Model          string
	TerminalID     string
	PlateColor     byte // 0 when the vehicle has no plate; then Plate is the VIN
	Plate          string
}

func registerWidths(e Edition) (maker, model, id int) {
	if e == Edition2019 {
		return 11, 30, 30
	}
	return 5, 20, 7
}

// Marshal encodes the body for edition e.
func (g Register) Marshal(e Edition) []byte {
	mk, md, id := registerWidths(e)
	b := putU16(putU16(nil, g.Province), g.City)
	b = append(b, fixed(g.Maker, mk)...)
	b = append(b, fixed(g.Model, md)...)
	b = append(b, fixed(g.TerminalID, id)...)
	b = append(b, g.PlateColor)
	return append(b, GBK(g.Plate)...)
}

// ParseRegister decodes a 0x0100 body of edition e.
func ParseRegister(body []byte, e Edition) (Register, error) {
	mk, md, id := registerWidths(e)
	r := &reader{b: body, id: IDRegister}
	g := Register{Province: r.u16("province"), City: r.u16("city")}
	g.Maker = unfixed(r.take(mk, "maker"))
	g.Model = unfixed(r.take(md, "model"))
	g.TerminalID = unfixed(r.take(id, "terminal ID"))
	g.PlateColor = r.u8("plate colour")
	if r.err == nil {
		g.Plate = unfixed(r.b)
	}
	return g, r.err
}

// RegisterResult is 0x8100. Result 0 carries the authentication code.
type RegisterResult struct {
	Serial   uint16
	Result   byte // 0 ok, 1 vehicle registered, 2 no such vehicle, 3 terminal registered, 4 no such terminal
	AuthCode string
}

// Marshal encodes the body.
func (g RegisterResult) Marshal() []byte {
	b := append(putU16(nil, g.Serial), g.Result)
	if g.Result == 0 {
		b = append(b, GBK(g.AuthCode)...)
	}
	return b
}

// ParseRegisterResult decodes a 0x8100 body.
func ParseRegisterResult(body []byte) (RegisterResult, error) {
	r := &reader{b: body, id: IDRegisterResponse}
	g := RegisterResult{Serial: r.u16("serial"), Result: r.u8("result")}
	if r.err == nil && g.Result == 0 {
		g.AuthCode = FromGBK(r.b)
	}
	return g, r.err
}

// Authenticate is 0x0102. The 2013 body is the code alone; 2019 prefixes its length
// and adds the IMEI (15 bytes) and the software version (20 bytes).
type Authenticate struct {
	Code     string
	IMEI     string
	Software string
}

// Marshal encodes the body for edition e.
func (a Authenticate) Marshal(e Edition) []byte {
	code := GBK(a.Code)
	if e != Edition2019 {
		return code
	}
	if len(code) > 255 {
		code = code[:255]
	}
	b := append([]byte{byte(len(code))}, code...)
	b = append(b, fixed(a.IMEI, 15)...)
	return append(b, fixed(a.Software, 20)...)
}

// ParseAuthenticate decodes a 0x0102 body of edition e.
func ParseAuthenticate(body []byte, e Edition) (Authenticate, error) {
	if e != Edition2019 {
		return Authenticate{Code: FromGBK(body)}, nil
	}
	r := &reader{b: body, id: IDAuthenticate}
	n := r.u8("code length")
	a := Authenticate{Code: FromGBK(r.take(int(n), "code"))}
	a.IMEI = unfixed(r.take(15, "IMEI"))
	a.Software = unfixed(r.take(20, "software version"))
	return a, r.err
}

// TemporaryTracking is 0x8202: report every Interval seconds for Validity seconds;
// Interval 0 stops it.
type TemporaryTracking struct {
	Interval uint16
	Validity uint32
}

// Marshal encodes the body.
func (t TemporaryTracking) Marshal() []byte { return putU32(putU16(nil, t.Interval), t.Validity) }

// ParseTemporaryTracking decodes a 0x8202 body.
func ParseTemporaryTracking(body []byte) (TemporaryTracking, error) {
	r := &reader{b: body, id: IDTemporaryTracking}
	t := TemporaryTracking{Interval: r.u16("interval")}
	if t.Interval != 0 {
		t.Validity = r.u32("validity")
	}
	return t, r.err
}

// TextMessage is 0x8300. Flags bit 0 is emergency, bit 2 terminal display, bit 3 TTS;
// Type (2019 only) is 1 service, 2 emergency, 3 notice.
type TextMessage struct {
	Flags byte
	Type  byte
	Text  string
}

// Marshal encodes the body for edition e.
func (t TextMessage) Marshal(e Edition) []byte {
	b := []byte{t.Flags}
	if e == Edition2019 {
		b = append(b, t.Type)
	}
	return append(b, GBK(t.Text)...)
}

// ParseTextMessage decodes a 0x8300 body of edition e.
func ParseTextMessage(body []byte, e Edition) (TextMessage, error) {
	r := &reader{b: body, id: IDTextMessage}
	t := TextMessage{Flags: r.u8("flags")}
	if e == Edition2019 {
		t.Type = r.u8("type")
	}
	if r.err == nil {
		t.Text = FromGBK(r.b)
	}
	return t, r.err
}

// ResendRequest is 0x8003: the platform asks for sub-packages of the message whose
// first packet had serial Serial. IDs are 1-based packet indexes. The count is a BYTE
// in 2013 and a WORD in 2019.
type ResendRequest struct {
	Serial uint16
	IDs    []uint16
}

// Marshal encodes the body for edition e.
func (q ResendRequest) Marshal(e Edition) []byte {
	b := putU16(nil, q.Serial)
	if e == Edition2019 {
		b = putU16(b, uint16(len(q.IDs)))
	} else {
		b = append(b, byte(len(q.IDs)))
	}
	for _, id := range q.IDs {
		b = putU16(b, id)
	}
	return b
}

// ParseResendRequest decodes a 0x8003 body of edition e.
func ParseResendRequest(body []byte, e Edition) (ResendRequest, error) {
	r := &reader{b: body, id: IDResendRequest}
	q := ResendRequest{Serial: r.u16("serial")}
	var n int
	if e == Edition2019 {
		n = int(r.u16("count"))
	} else {
		n = int(r.u8("count"))
	}
	for i := 0; i < n && r.err == nil; i++ {
		q.IDs = append(q.IDs, r.u16("packet ID"))
	}
	return q, r.err
}
