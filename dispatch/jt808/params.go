package jt808

import "fmt"

// Terminal parameter IDs dispatch sets and queries (0x8103, 0x8104, 0x0104).
const (
	ParamHeartbeat      uint32 = 0x0001 // DWORD, seconds
	ParamReplyTimeout   uint32 = 0x0002 // DWORD, seconds
	ParamMainServer     uint32 = 0x0013 // STRING, address (2019: "host:port" allowed)
	ParamServerTCPPort  uint32 = 0x0018 // DWORD (2013)
	ParamReportInterval uint32 = 0x0029 // DWORD, seconds: the default time report interval
	ParamTurnAngle      uint32 = 0x0030 // DWORD, degrees: the turn that triggers a report
)

// Param is one terminal parameter as carried in 0x8103 and 0x0104.
type Param struct {
	ID    uint32
	Value []byte
}

// DWORDParam makes a DWORD parameter.
func DWORDParam(id, v uint32) Param { return Param{ID: id, Value: putU32(nil, v)} }

// StringParam makes a STRING parameter (GBK).
func StringParam(id uint32, s string) Param { return Param{ID: id, Value: GBK(s)} }

// DWORD reads the value as a DWORD.
func (p Param) DWORD() (uint32, error) {
	if len(p.Value) != 4 {
		return 0, fmt.Errorf("%w: parameter 0x%04x has %d bytes, want a DWORD", ErrBody, p.ID, len(p.Value))
	}
	v := p.Value
	return uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3]), nil
}

// String reads the value as GBK text.
func (p Param) String() string { return FromGBK(p.Value) }

func marshalParams(b []byte, ps []Param) []byte {
	b = append(b, byte(len(ps)))
	for _, p := range ps {
		v := p.Value
		if len(v) > 255 {
			v = v[:255]
		}
		b = append(putU32(b, p.ID), byte(len(v)))
		b = append(b, v...)
	}
	return b
}

func parseParams(r *reader) []Param {
	n := int(r.u8("parameter count"))
	var ps []Param
	for i := 0; i < n && r.err == nil; i++ {
		id := r.u32("parameter ID")
		l := r.u8("parameter length")
		v := r.take(int(l), fmt.Sprintf("parameter 0x%04x", id))
		if r.err == nil {
			ps = append(ps, Param{ID: id, Value: append([]byte(nil), v...)})
		}
	}
	return ps
}

// SetParams is 0x8103.
type SetParams struct{ Params []Param }

// Marshal encodes the body.
func (s SetParams) Marshal() []byte { return marshalParams(nil, s.Params) }

// ParseSetParams decodes a 0x8103 body.
func ParseSetParams(body []byte) (SetParams, error) {
	r := &reader{b: body, id: IDSetParams}
	return SetParams{Params: parseParams(r)}, r.err
}

// ParamsAnswer is 0x0104, the answer to 0x8104.
type ParamsAnswer struct {
	Serial uint16
	Params []Param
}

// Marshal encodes the body.
func (a ParamsAnswer) Marshal() []byte { return marshalParams(putU16(nil, a.Serial), a.Params) }

// ParseParamsAnswer decodes a 0x0104 body.
func ParseParamsAnswer(body []byte) (ParamsAnswer, error) {
	r := &reader{b: body, id: IDParamsResponse}
	a := ParamsAnswer{Serial: r.u16("serial")}
	a.Params = parseParams(r)
	return a, r.err
}
