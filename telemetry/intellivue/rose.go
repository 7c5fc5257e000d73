package intellivue

import (
	"fmt"
)

// Remote operation APDU types.
const (
	ROInvoke       uint16 = 1 // ROIV_APDU
	ROResult       uint16 = 2 // RORS_APDU
	ROError        uint16 = 3 // ROER_APDU
	ROLinkedResult uint16 = 5 // ROLRS_APDU: one of several results of one invoke
)

// Linked result states.
const (
	LinkedFirst  uint8 = 1
	LinkedMiddle uint8 = 2
	LinkedLast   uint8 = 3
)

// Commands.
const (
	CmdEventReport          uint16 = 0
	CmdConfirmedEventReport uint16 = 1
	CmdGet                  uint16 = 3
	CmdSet                  uint16 = 4
	CmdConfirmedSet         uint16 = 5
	CmdConfirmedAction      uint16 = 7
)

// Object classes (partition NOM_PART_OBJ), actions and events.
const (
	PartObj   uint16 = 1
	PartSCADA uint16 = 2
	PartDim   uint16 = 4

	ClassNumeric  uint16 = 6    // NOM_MOC_VMO_METRIC_NU
	ClassRTSA     uint16 = 9    // NOM_MOC_VMO_METRIC_SA_RT: real-time sample arrays
	ClassMDS      uint16 = 0x21 // NOM_MOC_VMS_MDS
	ClassAlertMon uint16 = 0x36 // NOM_MOC_VMO_AL_MON

	ActionPoll     uint16 = 0x0C16 // NOM_ACT_POLL_MDIB_DATA
	ActionPollExt  uint16 = 0xF13B // NOM_ACT_POLL_MDIB_DATA_EXT
	EventMDSCreate uint16 = 0x0D06 // NOM_NOTI_MDS_CREAT

	// AttrGroupMDSKeepAlive is the MDS attribute group that clients poll as an
	// association keep-alive.
	AttrGroupMDSKeepAlive uint16 = 0x080C
	AttrGroupAlertMon     uint16 = 0x0801 // NOM_ATTR_GRP_AL_MON
)

// ObjectID is a ManagedObjectId: class plus instance (context, handle).
type ObjectID struct {
	Class, Context, Handle uint16
}

// MDS is the monitor's medical device system object.
var MDS = ObjectID{Class: ClassMDS}

func (w *writer) obj(o ObjectID) { w.u16(o.Class); w.u16(o.Context); w.u16(o.Handle) }
func (r *reader) obj() ObjectID  { return ObjectID{r.u16(), r.u16(), r.u16()} }

// Message is a data export message: the SPpdu (0xE1 0x00 0x00 0x02), the ROSE header
// and the command body.
type Message struct {
	RO          uint16
	LinkedState uint8 // ROLinkedResult only
	LinkedCount uint8
	InvokeID    uint16
	Command     uint16 // ROInvoke/ROResult/ROLinkedResult; the error value for ROError
	Body        []byte
}

var spPDU = []byte{SPDUData, 0x00, 0x00, 0x02}

// Marshal encodes the message.
func (m *Message) Marshal() []byte {
	w := writer{b: append([]byte(nil), spPDU...)}
	w.u16(m.RO)
	outer := w.mark()
	if m.RO == ROLinkedResult {
		w.u8(m.LinkedState)
		w.u8(m.LinkedCount)
	}
	w.u16(m.InvokeID)
	w.u16(m.Command)
	inner := w.mark()
	w.raw(m.Body...)
	w.patch(inner)
	w.patch(outer)
	return w.b
}

// ParseMessage decodes a data export message.
func ParseMessage(b []byte) (Message, error) {
	var m Message
	r := newReader(b, "data message")
	if sp := r.bytes(4); r.err == nil && (sp[0] != SPDUData || sp[1] != 0) {
		return m, fmt.Errorf("intellivue: not a data message (starts %x)", sp)
	}
	m.RO = r.u16()
	n := int(r.u16())
	if r.err == nil && n != r.left() {
		return m, fmt.Errorf("intellivue: ROSE length %d, %d bytes follow", n, r.left())
	}
	if m.RO == ROLinkedResult {
		m.LinkedState, m.LinkedCount = r.u8(), r.u8()
	}
	m.InvokeID = r.u16()
	m.Command = r.u16()
	if m.RO == ROError {
		m.Body = r.bytes(r.left())
		return m, r.err
	}
	l := int(r.u16())
	m.Body = r.bytes(l)
	if r.err == nil && r.left() != 0 {
		return m, fmt.Errorf("intellivue: %d bytes after the command body", r.left())
	}
	switch m.RO {
	case ROInvoke, ROResult, ROLinkedResult:
	default:
		return m, fmt.Errorf("intellivue: unknown remote operation type %d", m.RO)
	}
	return m, r.err
}

// AVA is one attribute: id and encoded value.
type AVA struct {
	ID    uint16
	Value []byte
}

func (w *writer) attrList(as []AVA) {
	w.u16(uint16(len(as)))
	at := w.mark()
	for _, a := range as {
		w.u16(a.ID)
		w.u16(uint16(len(a.Value)))
		w.raw(a.Value...)
	}
	w.patch(at)
}

func (r *reader) attrList(ctx string) []AVA {
	count, length := int(r.u16()), int(r.u16())
	s := r.sub(length, ctx)
	as := make([]AVA, 0, min(count, 64))
	for i := 0; i < count && s.err == nil; i++ {
		id, l := s.u16(), int(s.u16())
		v := s.bytes(l)
		if s.err == nil {
			as = append(as, AVA{id, v})
		}
	}
	if r.err == nil && s.err != nil {
		r.err = s.err
	}
	return as
}

// EventReport is the body of an event report invoke (the MDS create event).
type EventReport struct {
	Object   ObjectID
	Time     RelativeTime
	Type     uint16
	MDS      ObjectID // MdsCreateInfo: the MDS object…
	MDSAttrs []AVA    // …and its attributes
}

// Marshal encodes the event report body.
func (e *EventReport) Marshal() []byte {
	var w writer
	w.obj(e.Object)
	w.u32(uint32(e.Time))
	w.u16(e.Type)
	at := w.mark()
	w.obj(e.MDS)
	w.attrList(e.MDSAttrs)
	w.patch(at)
	return w.b
}

// ParseEventReport decodes an event report body.
func ParseEventReport(b []byte) (EventReport, error) {
	r := newReader(b, "event report")
	var e EventReport
	e.Object = r.obj()
	e.Time = RelativeTime(r.u32())
	e.Type = r.u16()
	s := r.sub(int(r.u16()), "MDS create info")
	if e.Type == EventMDSCreate {
		e.MDS = s.obj()
		e.MDSAttrs = s.attrList("MDS attributes")
		if s.err != nil {
			return e, s.err
		}
	}
	return e, r.err
}

// EventResult returns the body of the box's answer to an event report.
func EventResult(obj ObjectID, now RelativeTime, typ uint16) []byte {
	var w writer
	w.obj(obj)
	w.u32(uint32(now))
	w.u16(typ)
	w.u16(0)
	return w.b
}

// PollRequest asks for the attributes of all objects of a class.
type PollRequest struct {
	Ext        bool // NOM_ACT_POLL_MDIB_DATA_EXT
	PollNumber uint16
	ObjClass   uint16 // ClassNumeric, ClassRTSA, ClassAlertMon, ClassMDS
	AttrGroup  uint16 // 0: all
	// Period, for extended polls, keeps the monitor sending results for that long
	// (NOM_ATTR_TIME_PD_POLL); zero asks for one result.
	Period RelativeTime
}

const attrTimePollPeriod uint16 = 0xF13E // NOM_ATTR_TIME_PD_POLL

// Marshal encodes the action argument body.
func (p PollRequest) Marshal() []byte {
	var w writer
	w.obj(MDS)
	w.u32(0) // scope
	if p.Ext {
		w.u16(ActionPollExt)
	} else {
		w.u16(ActionPoll)
	}
	at := w.mark()
	w.u16(p.PollNumber)
	w.u16(PartObj)
	w.u16(p.ObjClass)
	w.u16(p.AttrGroup)
	if p.Ext {
		var attrs []AVA
		if p.Period > 0 {
			v := writer{}
			v.u32(uint32(p.Period))
			attrs = append(attrs, AVA{attrTimePollPeriod, v.b})
		}
		w.attrList(attrs)
	}
	w.patch(at)
	return w.b
}

// ParsePollRequest decodes an action argument body carrying a poll.
func ParsePollRequest(b []byte) (PollRequest, error) {
	r := newReader(b, "poll request")
	var p PollRequest
	r.obj()
	r.u32()
	act := r.u16()
	s := r.sub(int(r.u16()), "poll request argument")
	switch act {
	case ActionPoll:
	case ActionPollExt:
		p.Ext = true
	default:
		if r.err != nil {
			return p, r.err
		}
		return p, fmt.Errorf("intellivue: action 0x%04x is not a poll", act)
	}
	p.PollNumber = s.u16()
	s.u16() // partition
	p.ObjClass = s.u16()
	p.AttrGroup = s.u16()
	if p.Ext && s.left() > 0 {
		for _, a := range s.attrList("poll attributes") {
			if a.ID == attrTimePollPeriod && len(a.Value) == 4 {
				p.Period = RelativeTime(uint32(a.Value[0])<<24 | uint32(a.Value[1])<<16 | uint32(a.Value[2])<<8 | uint32(a.Value[3]))
			}
		}
	}
	if r.err != nil {
		return p, r.err
	}
	return p, s.err
}

// ObservationPoll is one object's attributes in a poll result.
type ObservationPoll struct {
	Handle uint16
	Attrs  []AVA
}

// ContextPoll groups the objects of one MDS context.
type ContextPoll struct {
	Context uint16
	Objects []ObservationPoll
}

// PollReply is the result of a poll.
type PollReply struct {
	Ext        bool
	PollNumber uint16
	Sequence   uint16 // extended polls: counts the results of one request
	RelTime    RelativeTime
	AbsTime    AbsoluteTime
	ObjClass   uint16
	AttrGroup  uint16
	Contexts   []ContextPoll
}

// Marshal encodes the action result body.
func (p *PollReply) Marshal() []byte {
	var w writer
	w.obj(MDS)
	if p.Ext {
		w.u16(ActionPollExt)
	} else {
		w.u16(ActionPoll)
	}
	at := w.mark()
	w.u16(p.PollNumber)
	if p.Ext {
		w.u16(p.Sequence)
	}
	w.u32(uint32(p.RelTime))
	w.raw(p.AbsTime[:]...)
	w.u16(PartObj)
	w.u16(p.ObjClass)
	w.u16(p.AttrGroup)
	w.u16(uint16(len(p.Contexts)))
	list := w.mark()
	for _, c := range p.Contexts {
		w.u16(c.Context)
		w.u16(uint16(len(c.Objects)))
		objs := w.mark()
		for _, o := range c.Objects {
			w.u16(o.Handle)
			w.attrList(o.Attrs)
		}
		w.patch(objs)
	}
	w.patch(list)
	w.patch(at)
	return w.b
}

// ParsePollReply decodes an action result body carrying poll results.
func ParsePollReply(b []byte) (PollReply, error) {
	r := newReader(b, "poll result")
	var p PollReply
	r.obj()
	act := r.u16()
	s := r.sub(int(r.u16()), "poll result body")
	if r.err != nil {
		return p, r.err
	}
	switch act {
	case ActionPoll:
	case ActionPollExt:
		p.Ext = true
	default:
		return p, fmt.Errorf("intellivue: action result 0x%04x is not a poll result", act)
	}
	p.PollNumber = s.u16()
	if p.Ext {
		p.Sequence = s.u16()
	}
	p.RelTime = RelativeTime(s.u32())
	copy(p.AbsTime[:], s.bytes(8))
	s.u16()
	p.ObjClass = s.u16()
	p.AttrGroup = s.u16()
	count := int(s.u16())
	list := s.sub(int(s.u16()), "poll info list")
	for i := 0; i < count && list.err == nil; i++ {
		c := ContextPoll{Context: list.u16()}
		n := int(list.u16())
		objs := list.sub(int(list.u16()), "context poll")
		for j := 0; j < n && objs.err == nil; j++ {
			o := ObservationPoll{Handle: objs.u16()}
			o.Attrs = objs.attrList("observation poll")
			if objs.err == nil {
				c.Objects = append(c.Objects, o)
			}
		}
		if objs.err != nil {
			return p, objs.err
		}
		p.Contexts = append(p.Contexts, c)
	}
	if s.err != nil {
		return p, s.err
	}
	return p, list.err
}
