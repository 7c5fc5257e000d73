// Package dimse is the DICOM network stack of the box: the upper layer protocol
// (PS3.8: association negotiation, P-DATA-TF fragmentation, release, abort, ARTIM),
// the DIMSE command sets of C-ECHO and C-STORE (PS3.7), a C-STORE SCP that feeds a
// dicom.Sink, and a C-STORE SCU.
package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// PDU types (PS3.8 9.3).
const (
	typeAssociateRQ = 0x01
	typeAssociateAC = 0x02
	typeAssociateRJ = 0x03
	typePData       = 0x04
	typeReleaseRQ   = 0x05
	typeReleaseRP   = 0x06
	typeAbort       = 0x07
)

// MaxAssociateLength bounds the body of an A-ASSOCIATE-RQ or -AC. DCMTK's storescu
// proposing every storage SOP class it knows (128 presentation contexts) sends 9.6 KiB,
// 11 KiB with a compressed syntax added to each; 64 KiB leaves room for 128 contexts
// with 18 transfer syntaxes each, which no modality proposes. A peer that announces
// more is refused after 6 bytes, before anything is allocated for it.
const MaxAssociateLength = 64 << 10

// fixedPDULength is the body length of A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT,
// which PS3.8 9.3 fixes at 4 bytes.
const fixedPDULength = 4

// limitOf returns the largest body the reader accepts for a PDU of type typ.
func (pr *Reader) limitOf(typ byte) uint32 {
	switch typ {
	case typePData:
		if pr.maxPDU > 0 {
			return pr.maxPDU
		}
		return maxUnboundedPData
	case typeAssociateRQ, typeAssociateAC:
		return MaxAssociateLength
	}
	return fixedPDULength
}

// maxUnboundedPData bounds a P-DATA-TF for a reader created without a maximum.
const maxUnboundedPData = 1 << 20

// ErrMalformedPDU wraps every error about bytes that do not form a valid PDU.
var ErrMalformedPDU = errors.New("malformed PDU")

// PDU is one of *AssociateRQ, *AssociateAC, *AssociateRJ, *PData, *ReleaseRQ,
// *ReleaseRP or *Abort.
type PDU interface{ pduType() byte }

// PresentationContext is a proposed (RQ) or answered (AC) presentation context.
type PresentationContext struct {
	ID               byte
	AbstractSyntax   string   // RQ only
	TransferSyntaxes []string // RQ: proposed; AC: the one accepted
	Result           byte     // AC only: ResultAcceptance, …
}

// Presentation context results (PS3.8 9.3.3.2).
const (
	ResultAcceptance               = 0
	ResultUserRejection            = 1
	ResultNoReason                 = 2
	ResultAbstractSyntaxRejected   = 3
	ResultTransferSyntaxesRejected = 4
)

// Associate is the shared body of A-ASSOCIATE-RQ and -AC.
type Associate struct {
	ProtocolVersion        uint16
	CalledAE, CallingAE    string
	ApplicationContext     string
	Contexts               []PresentationContext
	MaxPDU                 uint32 // largest P-DATA-TF variable field the sender accepts; 0 = no limit
	ImplementationClassUID string
	ImplementationVersion  string
	// AsyncWindow is the Asynchronous Operations Window sub-item (PS3.7 D.3.3.3); nil
	// when absent, which means one operation at a time each way.
	AsyncWindow *AsyncWindow
}

// AsyncWindow is how many operations the sender may have outstanding (PS3.7 D.3.3.3):
// Invoked, that it invokes and awaits responses to; Performed, that it performs at
// once. Zero means no limit.
type AsyncWindow struct{ Invoked, Performed uint16 }

// AssociateRQ is an A-ASSOCIATE-RQ PDU.
type AssociateRQ struct{ Associate }

// AssociateAC is an A-ASSOCIATE-AC PDU.
type AssociateAC struct{ Associate }

// AssociateRJ is an A-ASSOCIATE-RJ PDU (PS3.8 9.3.4).
type AssociateRJ struct{ Result, Source, Reason byte }

// PDV is one presentation data value item of a P-DATA-TF PDU.
type PDV struct {
	ContextID byte
	Command   bool // a command fragment, else a data set fragment
	Last      bool
	Data      []byte
}

// PData is a P-DATA-TF PDU. Its PDVs' Data alias the reader's buffer.
type PData struct{ PDVs []PDV }

// ReleaseRQ is an A-RELEASE-RQ PDU.
type ReleaseRQ struct{}

// ReleaseRP is an A-RELEASE-RP PDU.
type ReleaseRP struct{}

// Abort is an A-ABORT PDU (PS3.8 9.3.8).
type Abort struct{ Source, Reason byte }

func (*AssociateRQ) pduType() byte { return typeAssociateRQ }
func (*AssociateAC) pduType() byte { return typeAssociateAC }
func (*AssociateRJ) pduType() byte { return typeAssociateRJ }
func (*PData) pduType() byte       { return typePData }
func (*ReleaseRQ) pduType() byte   { return typeReleaseRQ }
func (*ReleaseRP) pduType() byte   { return typeReleaseRP }
func (*Abort) pduType() byte       { return typeAbort }

// Reader reads PDUs from a stream, reusing one buffer for the bodies.
type Reader struct {
	r      io.Reader
	maxPDU uint32 // largest P-DATA-TF body accepted
	buf    []byte
	hdr    [6]byte
}

// NewReader returns a Reader that refuses P-DATA-TF PDUs longer than maxPDU bytes.
func NewReader(r io.Reader, maxPDU uint32) *Reader { return &Reader{r: r, maxPDU: maxPDU} }

// Read reads the next PDU. The returned PDU is valid until the next call. A length
// larger than allowed is refused before anything is allocated for it.
func (pr *Reader) Read() (PDU, error) {
	if _, err := io.ReadFull(pr.r, pr.hdr[:]); err != nil {
		return nil, err
	}
	typ := pr.hdr[0]
	length := binary.BigEndian.Uint32(pr.hdr[2:])
	if typ < typeAssociateRQ || typ > typeAbort {
		return nil, fmt.Errorf("%w: unknown PDU type 0x%02x", ErrMalformedPDU, typ)
	}
	limit := pr.limitOf(typ)
	if length > limit {
		return nil, fmt.Errorf("%w: PDU type 0x%02x announces %d bytes, limit %d", ErrMalformedPDU, typ, length, limit)
	}
	// Grow the buffer only as bytes arrive, so that a peer announcing a large PDU
	// and sending little costs little memory.
	body := pr.buf[:0]
	for len(body) < int(length) {
		chunk := min(int(length)-len(body), 64<<10)
		body = slices.Grow(body, chunk)
		n, err := io.ReadFull(pr.r, body[len(body):len(body)+chunk])
		body = body[:len(body)+n]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%w: PDU type 0x%02x truncated after %d of %d bytes: %w", ErrMalformedPDU, typ, len(body), length, err)
		}
	}
	pr.buf = body
	return Decode(typ, body)
}

// Decode parses the body of a PDU of type typ.
func Decode(typ byte, body []byte) (PDU, error) {
	switch typ {
	case typeAssociateRQ:
		a, err := decodeAssociate(body, false)
		if err != nil {
			return nil, err
		}
		return &AssociateRQ{a}, nil
	case typeAssociateAC:
		a, err := decodeAssociate(body, true)
		if err != nil {
			return nil, err
		}
		return &AssociateAC{a}, nil
	case typeAssociateRJ:
		if len(body) != 4 {
			return nil, fmt.Errorf("%w: A-ASSOCIATE-RJ of %d bytes, want 4", ErrMalformedPDU, len(body))
		}
		return &AssociateRJ{Result: body[1], Source: body[2], Reason: body[3]}, nil
	case typePData:
		return decodePData(body)
	case typeReleaseRQ, typeReleaseRP, typeAbort:
		if len(body) != 4 {
			return nil, fmt.Errorf("%w: PDU type 0x%02x of %d bytes, want 4", ErrMalformedPDU, typ, len(body))
		}
		switch typ {
		case typeReleaseRQ:
			return &ReleaseRQ{}, nil
		case typeReleaseRP:
			return &ReleaseRP{}, nil
		}
		return &Abort{Source: body[2], Reason: body[3]}, nil
	}
	return nil, fmt.Errorf("%w: unknown PDU type 0x%02x", ErrMalformedPDU, typ)
}

func decodePData(body []byte) (*PData, error) {
	p := &PData{}
	for len(body) > 0 {
		if len(body) < 6 {
			return nil, fmt.Errorf("%w: PDV item header truncated", ErrMalformedPDU)
		}
		n := binary.BigEndian.Uint32(body)
		if n < 2 || uint64(n) > uint64(len(body)-4) {
			return nil, fmt.Errorf("%w: PDV item length %d does not fit the %d bytes left", ErrMalformedPDU, n, len(body)-4)
		}
		ctl := body[5]
		p.PDVs = append(p.PDVs, PDV{ContextID: body[4], Command: ctl&1 != 0, Last: ctl&2 != 0, Data: body[6 : 4+n]})
		body = body[4+n:]
	}
	if len(p.PDVs) == 0 {
		return nil, fmt.Errorf("%w: P-DATA-TF without PDV items", ErrMalformedPDU)
	}
	return p, nil
}

func aeTitle(b []byte) string { return strings.TrimSpace(string(b)) }

func decodeAssociate(body []byte, ac bool) (Associate, error) {
	var a Associate
	if len(body) < 68 {
		return a, fmt.Errorf("%w: A-ASSOCIATE of %d bytes, shorter than its 68-byte fixed part", ErrMalformedPDU, len(body))
	}
	a.ProtocolVersion = binary.BigEndian.Uint16(body[0:])
	a.CalledAE = aeTitle(body[4:20])
	a.CallingAE = aeTitle(body[20:36])
	items := body[68:]
	for len(items) > 0 {
		if len(items) < 4 {
			return a, fmt.Errorf("%w: item header truncated", ErrMalformedPDU)
		}
		typ := items[0]
		n := int(binary.BigEndian.Uint16(items[2:]))
		if n > len(items)-4 {
			return a, fmt.Errorf("%w: item 0x%02x of %d bytes overruns the PDU", ErrMalformedPDU, typ, n)
		}
		v := items[4 : 4+n]
		items = items[4+n:]
		switch typ {
		case 0x10:
			a.ApplicationContext = uidString(v)
		case 0x20, 0x21:
			if (typ == 0x21) != ac {
				return a, fmt.Errorf("%w: presentation context item 0x%02x in the wrong PDU", ErrMalformedPDU, typ)
			}
			pc, err := decodeContext(v, ac)
			if err != nil {
				return a, err
			}
			a.Contexts = append(a.Contexts, pc)
		case 0x50:
			if err := a.decodeUserInfo(v); err != nil {
				return a, err
			}
		default:
			// Unknown items are ignored, as PS3.8 9.3.1 asks.
		}
	}
	return a, nil
}

func uidString(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }

func decodeContext(v []byte, ac bool) (PresentationContext, error) {
	var pc PresentationContext
	if len(v) < 4 {
		return pc, fmt.Errorf("%w: presentation context item of %d bytes", ErrMalformedPDU, len(v))
	}
	pc.ID = v[0]
	pc.Result = v[2]
	sub := v[4:]
	for len(sub) > 0 {
		if len(sub) < 4 {
			return pc, fmt.Errorf("%w: presentation context %d: sub-item header truncated", ErrMalformedPDU, pc.ID)
		}
		typ := sub[0]
		n := int(binary.BigEndian.Uint16(sub[2:]))
		if n > len(sub)-4 {
			return pc, fmt.Errorf("%w: presentation context %d: sub-item overruns its item", ErrMalformedPDU, pc.ID)
		}
		val := uidString(sub[4 : 4+n])
		sub = sub[4+n:]
		switch typ {
		case 0x30:
			pc.AbstractSyntax = val
		case 0x40:
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, val)
		default:
			return pc, fmt.Errorf("%w: presentation context %d: unexpected sub-item 0x%02x", ErrMalformedPDU, pc.ID, typ)
		}
	}
	if !ac && (pc.AbstractSyntax == "" || len(pc.TransferSyntaxes) == 0) {
		return pc, fmt.Errorf("%w: presentation context %d lacks an abstract or transfer syntax", ErrMalformedPDU, pc.ID)
	}
	return pc, nil
}

func (a *Associate) decodeUserInfo(v []byte) error {
	for len(v) > 0 {
		if len(v) < 4 {
			return fmt.Errorf("%w: user information sub-item truncated", ErrMalformedPDU)
		}
		typ := v[0]
		n := int(binary.BigEndian.Uint16(v[2:]))
		if n > len(v)-4 {
			return fmt.Errorf("%w: user information sub-item 0x%02x overruns its item", ErrMalformedPDU, typ)
		}
		val := v[4 : 4+n]
		v = v[4+n:]
		switch typ {
		case 0x51:
			if n != 4 {
				return fmt.Errorf("%w: maximum length sub-item of %d bytes", ErrMalformedPDU, n)
			}
			a.MaxPDU = binary.BigEndian.Uint32(val)
		case 0x52:
			a.ImplementationClassUID = uidString(val)
		case 0x53:
			if n != 4 {
				return fmt.Errorf("%w: asynchronous operations window sub-item of %d bytes", ErrMalformedPDU, n)
			}
			a.AsyncWindow = &AsyncWindow{Invoked: binary.BigEndian.Uint16(val), Performed: binary.BigEndian.Uint16(val[2:])}
		case 0x55:
			a.ImplementationVersion = strings.TrimSpace(string(val))
		}
		// Role selection, extended negotiation and user identity are not
		// negotiated: leaving them out of the answer declines them.
	}
	return nil
}

// Encode returns the whole PDU, header included.
func (a *AssociateRQ) Encode() []byte { return a.encode(typeAssociateRQ) }

// Encode returns the whole PDU, header included.
func (a *AssociateAC) Encode() []byte { return a.encode(typeAssociateAC) }

func (a *Associate) encode(typ byte) []byte {
	b := make([]byte, 6, 512)
	b[0] = typ
	b = binary.BigEndian.AppendUint16(b, 1) // protocol version
	b = append(b, 0, 0)
	b = append(b, padAE(a.CalledAE)...)
	b = append(b, padAE(a.CallingAE)...)
	b = append(b, make([]byte, 32)...)
	ctx := a.ApplicationContext
	if ctx == "" {
		ctx = "1.2.840.10008.3.1.1.1"
	}
	b = appendItem(b, 0x10, []byte(ctx))
	for _, pc := range a.Contexts {
		var v []byte
		if typ == typeAssociateRQ {
			v = []byte{pc.ID, 0, 0, 0}
			v = appendItem(v, 0x30, []byte(pc.AbstractSyntax))
		} else {
			v = []byte{pc.ID, 0, pc.Result, 0}
		}
		for _, ts := range pc.TransferSyntaxes {
			v = appendItem(v, 0x40, []byte(ts))
		}
		t := byte(0x20)
		if typ == typeAssociateAC {
			t = 0x21
		}
		b = appendItem(b, t, v)
	}
	var ui []byte
	ui = appendItem(ui, 0x51, binary.BigEndian.AppendUint32(nil, a.MaxPDU))
	impl := a.ImplementationClassUID
	if impl == "" {
		impl = implementationClassUID
	}
	ui = appendItem(ui, 0x52, []byte(impl))
	if w := a.AsyncWindow; w != nil {
		ui = appendItem(ui, 0x53, binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, w.Invoked), w.Performed))
	}
	ver := a.ImplementationVersion
	if ver == "" {
		ver = implementationVersion
	}
	ui = appendItem(ui, 0x55, []byte(ver))
	b = appendItem(b, 0x50, ui)
	binary.BigEndian.PutUint32(b[2:], uint32(len(b)-6))
	return b
}

func appendItem(b []byte, typ byte, v []byte) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

func padAE(s string) []byte {
	b := []byte(fmt.Sprintf("%-16s", s))
	return b[:16]
}

// Encode returns the whole PDU.
func (r *AssociateRJ) Encode() []byte {
	return []byte{typeAssociateRJ, 0, 0, 0, 0, 4, 0, r.Result, r.Source, r.Reason}
}

// Encode returns the whole PDU.
func (a *Abort) Encode() []byte { return []byte{typeAbort, 0, 0, 0, 0, 4, 0, 0, a.Source, a.Reason} }

func encodeRelease(typ byte) []byte { return []byte{typ, 0, 0, 0, 0, 4, 0, 0, 0, 0} }

// pdvHeader returns the 12 bytes that start a P-DATA-TF PDU carrying one PDV of n
// data bytes, so that the data itself can be written without copying.
func pdvHeader(ctx byte, command, last bool, n int) []byte {
	h := make([]byte, 12)
	h[0] = typePData
	binary.BigEndian.PutUint32(h[2:], uint32(n+6))
	binary.BigEndian.PutUint32(h[6:], uint32(n+2))
	h[10] = ctx
	if command {
		h[11] |= 1
	}
	if last {
		h[11] |= 2
	}
	return h
}
