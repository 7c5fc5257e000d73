package intellivue

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"lifeline/telemetry"
)

// Mode is the MIB/RS232 line setting: 115200 baud, 8N1.
var Mode = telemetry.SerialMode{Baud: 115200, DataBits: 8, Parity: telemetry.ParityNone, StopBits: 1}

// Config tunes the driver; the zero value is the usual set-up.
type Config struct {
	Logger *slog.Logger // nil: discard
	// PollPeriod is how long one extended poll keeps the monitor sending; the driver
	// renews it when the last result arrives. Default 20 s.
	PollPeriod time.Duration
	// KeepAlive is the interval of the MDS poll that keeps the association alive (the
	// monitor drops an association it hears nothing on); default 5 s.
	KeepAlive time.Duration
	// Silence is how long without any message from the monitor before the driver gives
	// the association up and associates again; default 6 s.
	Silence time.Duration
	// Retry is the pause before a new association request after a refusal or a lost
	// association; default 1 s.
	Retry time.Duration
	// NoAlarms skips the alert poll.
	NoAlarms bool
	// Location is the time zone of the monitor's wall clock; default UTC.
	Location *time.Location
}

// Driver reads an IntelliVue monitor; it implements telemetry.Driver.
type Driver struct {
	cfg Config
	log *slog.Logger
}

// New returns a driver with cfg's defaults filled in.
func New(cfg Config) *Driver {
	if cfg.PollPeriod <= 0 {
		cfg.PollPeriod = 20 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 5 * time.Second
	}
	if cfg.Silence <= 0 {
		cfg.Silence = 6 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	return &Driver{cfg: cfg, log: telemetry.DiscardLogger(cfg.Logger).With("protocol", "intellivue")}
}

// Protocol implements telemetry.Driver.
func (*Driver) Protocol() string { return "intellivue" }

// Serial implements telemetry.Driver.
func (*Driver) Serial() telemetry.SerialMode { return Mode }

// ClientInfo is the user information the box offers: numerics every second and
// real-time waves through extended polls.
var ClientInfo = UserInfo{SystemType: systemClient, MinPollPeriod: 0x09C4, MaxMTURx: 0x09C4, MaxMTUTx: 0x03E8,
	Options: PollOptDynCreate | PollOptDynDelete, ExtOptions: PollExtNu1s | PollExtRTSA | PollExtEnum}

// ProbeRequest implements telemetry.Detector: an association request, which a monitor
// answers with an association response or refusal at once.
func (*Driver) ProbeRequest() []byte { return Frame(AssociationRequest(ClientInfo)) }

// ProbeWindow implements telemetry.Detector.
func (*Driver) ProbeWindow() time.Duration { return 2 * time.Second }

// Probe implements telemetry.Detector: a frame with a good FCS carrying a message a
// monitor sends (not the box's own association request, which an echoing line returns).
func (*Driver) Probe(data []byte) bool {
	var d Deframer
	found := false
	d.Feed(data, func(m []byte) {
		switch m[0] {
		case SPDUAccept, SPDURefuse, SPDUAbort, SPDUDisconnect:
			found = true
		case SPDUData:
			_, err := ParseMessage(m)
			found = found || err == nil
		}
	}, func(*FrameError) {})
	return found
}

type phase int

const (
	phaseAssociating phase = iota // request sent, waiting for the response
	phaseWaitMDS                  // accepted, waiting for the MDS create event
	phaseConnected                // polling
)

func (p phase) String() string {
	return [...]string{"associating", "waiting for MDS create", "connected"}[p]
}

// Run implements telemetry.Driver.
func (d *Driver) Run(ctx context.Context, port telemetry.Port, out telemetry.Sink) error {
	if err := port.SetReadTimeout(50 * time.Millisecond); err != nil {
		return fmt.Errorf("intellivue: set read timeout: %w", err)
	}
	c := newConn(d, port, out)
	defer c.release(ctx)
	buf := make([]byte, 4096)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.timers(time.Now()); err != nil {
			return d.portErr(ctx, "write", err)
		}
		n, err := port.Read(buf)
		if n > 0 {
			if werr := c.feed(buf[:n], time.Now()); werr != nil {
				return d.portErr(ctx, "write", werr)
			}
		}
		if err != nil {
			return d.portErr(ctx, "read", err)
		}
	}
}

func (d *Driver) portErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("intellivue: %s: %w", op, err)
}

// pollState tracks one class's extended poll.
type pollState struct {
	number   uint16
	sent     time.Time
	lastData time.Time
	done     bool // the last result of the period arrived
}

// waveSpec is what the static attributes of a wave object told us.
type waveSpec struct {
	spec   SaSpec
	scale  Scale
	period RelativeTime
	unit   string
	ok     [3]bool // spec, scale, period known
}

// conn is one connection's protocol state.
type conn struct {
	d        *Driver
	port     telemetry.Port
	out      telemetry.Sink
	deframer Deframer
	skipped  uint64

	phase phase
	// nextRequest is when the next association request goes out: a Retry after a
	// refusal or a lost association, or, while one is unanswered, once it has had time
	// to be answered. Zero: at once.
	nextRequest time.Time
	unanswered  bool      // an association request is out and no answer came
	heard       time.Time // last valid message from the monitor
	keepAlive   time.Time
	invoke      uint16
	polls       map[uint16]*pollState // by object class
	pollNum     uint16

	baseAbs  time.Time // monitor wall clock at baseRel (from the MDS create event)
	baseRel  RelativeTime
	waves    map[uint16]*waveSpec // by object handle
	alarms   map[DevAlarm]bool
	lossGen  uint64
	chanGen  map[uint32]uint64 // by handle<<16 | physio id
	unmapped map[uint16]bool
	everUp   bool
	// labels holds what each object's label string says (the monitor sends it among
	// the static attributes, so it is remembered per handle); handles the object
	// handle each physio id was last seen on, for alarms that name only the physio id.
	labels  map[uint16]string
	handles map[uint16]uint16
}

func newConn(d *Driver, port telemetry.Port, out telemetry.Sink) *conn {
	return &conn{d: d, port: port, out: out, polls: map[uint16]*pollState{}, waves: map[uint16]*waveSpec{},
		alarms: map[DevAlarm]bool{}, chanGen: map[uint32]uint64{}, unmapped: map[uint16]bool{},
		labels: map[uint16]string{}, handles: map[uint16]uint16{}}
}

func (c *conn) send(userData []byte) error {
	_, err := c.port.Write(Frame(userData))
	return err
}

func (c *conn) associate(now time.Time) error {
	c.phase, c.heard = phaseAssociating, now
	c.nextRequest, c.unanswered = now.Add(2*c.d.cfg.Retry+time.Second), true
	c.polls = map[uint16]*pollState{}
	c.waves = map[uint16]*waveSpec{}
	return c.send(AssociationRequest(ClientInfo))
}

// associateAfterRetry gives an association up: a new request goes out after Retry.
func (c *conn) associateAfterRetry(now time.Time) {
	c.phase, c.nextRequest, c.unanswered = phaseAssociating, now.Add(c.d.cfg.Retry), false
}

// release ends the association politely when Run ends with the port still open.
func (c *conn) release(ctx context.Context) {
	if c.phase == phaseConnected || c.phase == phaseWaitMDS {
		_ = c.send(ReleaseRequest()) // best effort: the port may be closing under us
	}
}

func (c *conn) timers(now time.Time) error {
	cfg := c.d.cfg
	switch c.phase {
	case phaseAssociating:
		if !now.Before(c.nextRequest) {
			if c.unanswered {
				c.d.log.Warn("intellivue: no association response, asking again")
			}
			return c.associate(now)
		}
	case phaseWaitMDS, phaseConnected:
		if now.Sub(c.heard) >= cfg.Silence {
			c.d.log.Warn("intellivue: monitor silent, associating again", "phase", c.phase, "silent_for", now.Sub(c.heard).Round(time.Millisecond))
			c.lossGen++
			if err := c.send(Abort()); err != nil {
				return err
			}
			c.associateAfterRetry(now)
			return nil
		}
	}
	if c.phase != phaseConnected {
		return nil
	}
	if now.Sub(c.keepAlive) >= cfg.KeepAlive {
		c.keepAlive = now
		if err := c.invokeAction(PollRequest{PollNumber: c.nextPoll(), ObjClass: ClassMDS, AttrGroup: AttrGroupMDSKeepAlive}); err != nil {
			return err
		}
	}
	classes := []uint16{ClassNumeric, ClassRTSA}
	if !cfg.NoAlarms {
		classes = append(classes, ClassAlertMon)
	}
	for _, cl := range classes {
		p := c.polls[cl]
		// Renew when the period ended, or when the results stopped (a lost request or
		// a lost last result).
		if p == nil || (p.done && now.Sub(p.sent) >= time.Second) || (!p.done && now.Sub(maxTime(p.sent, p.lastData)) >= 3*time.Second) {
			if p != nil && !p.done {
				c.lossGen++
			}
			if err := c.poll(cl, now); err != nil {
				return err
			}
		}
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (c *conn) nextPoll() uint16 { c.pollNum++; return c.pollNum }

func (c *conn) invokeAction(p PollRequest) error {
	c.invoke++
	m := Message{RO: ROInvoke, InvokeID: c.invoke, Command: CmdConfirmedAction, Body: p.Marshal()}
	return c.send(m.Marshal())
}

func (c *conn) poll(class uint16, now time.Time) error {
	p := &pollState{number: c.nextPoll(), sent: now}
	c.polls[class] = p
	group := uint16(0)
	if class == ClassAlertMon {
		group = AttrGroupAlertMon
	}
	return c.invokeAction(PollRequest{Ext: true, PollNumber: p.number, ObjClass: class, AttrGroup: group, Period: Rel(c.d.cfg.PollPeriod)})
}

// feed decodes bytes from the port and answers what needs an answer.
func (c *conn) feed(p []byte, now time.Time) (werr error) {
	c.deframer.Feed(p, func(m []byte) {
		if err := c.message(m, now); err != nil && werr == nil {
			werr = err
		}
	}, func(e *FrameError) {
		if e.Reason != "too short" {
			c.lossGen++
		}
		c.out.Skipped(e.Len+2, "bad frame: "+e.Reason)
		c.d.log.Warn("intellivue: frame dropped", "reason", e.Reason, "len", e.Len)
	})
	if n := c.deframer.Skipped - c.skipped; n > 0 {
		c.skipped = c.deframer.Skipped
		c.out.Skipped(int(n), "noise")
	}
	return werr
}

func (c *conn) message(m []byte, now time.Time) error {
	switch m[0] {
	case SPDUAccept:
		_, u, err := ParseAssociation(m)
		if err != nil {
			c.bad(len(m), "bad association response", err)
			return nil
		}
		c.out.Frame()
		c.heard = now
		if c.phase == phaseAssociating {
			c.d.log.Info("intellivue: association accepted", "mtu_tx", u.MaxMTUTx, "mtu_rx", u.MaxMTURx)
			c.phase = phaseWaitMDS
		}
	case SPDURefuse:
		c.out.Frame()
		c.d.log.Warn("intellivue: association refused; aborting any old association and retrying")
		c.associateAfterRetry(now)
		return c.send(Abort())
	case SPDUAbort, SPDUDisconnect:
		c.out.Frame()
		if c.phase != phaseAssociating {
			c.d.log.Warn("intellivue: the monitor ended the association", "spdu", fmt.Sprintf("0x%02x", m[0]))
			c.lossGen++
		}
		c.associateAfterRetry(now)
	case SPDUFinish:
		c.out.Frame()
		c.d.log.Warn("intellivue: the monitor released the association")
		c.lossGen++
		c.associateAfterRetry(now)
		return c.send(ReleaseResponse())
	case SPDUData:
		msg, err := ParseMessage(m)
		if err != nil {
			c.bad(len(m), "bad data message", err)
			return nil
		}
		c.out.Frame()
		c.heard = now
		return c.data(msg, now)
	default:
		c.bad(len(m), "unknown session message", fmt.Errorf("SPDU 0x%02x", m[0]))
	}
	return nil
}

func (c *conn) bad(n int, what string, err error) {
	c.out.Skipped(n, what)
	c.d.log.Warn("intellivue: "+what, "err", err)
}

func (c *conn) data(m Message, now time.Time) error {
	switch {
	case m.RO == ROInvoke && (m.Command == CmdConfirmedEventReport || m.Command == CmdEventReport):
		ev, err := ParseEventReport(m.Body)
		if err != nil {
			c.bad(len(m.Body), "bad event report", err)
			return nil
		}
		if ev.Type != EventMDSCreate {
			return nil
		}
		c.mdsCreated(ev, now)
		if m.Command == CmdConfirmedEventReport {
			res := Message{RO: ROResult, InvokeID: m.InvokeID, Command: CmdConfirmedEventReport, Body: EventResult(ev.Object, ev.Time, EventMDSCreate)}
			if err := c.send(res.Marshal()); err != nil {
				return err
			}
		}
		if c.phase != phaseConnected {
			c.phase = phaseConnected
			c.keepAlive = now
			if !c.everUp {
				c.everUp = true
				c.out.Emit(&telemetry.DeviceEvent{State: telemetry.DeviceConnected, Detail: "IntelliVue associated", ReceiveTime: now})
			}
		}
	case (m.RO == ROResult || m.RO == ROLinkedResult) && m.Command == CmdConfirmedAction:
		r, err := ParsePollReply(m.Body)
		if err != nil {
			c.bad(len(m.Body), "bad poll result", err)
			return nil
		}
		if p := c.polls[r.ObjClass]; p != nil && p.number == r.PollNumber {
			p.lastData = now
			if m.RO == ROResult || m.LinkedState == LinkedLast {
				p.done = true
			}
		}
		c.results(r, now)
	case m.RO == ROError:
		c.d.log.Warn("intellivue: the monitor answered with an error", "invoke", m.InvokeID, "error", m.Command)
	}
	return nil
}

func (c *conn) mdsCreated(ev EventReport, now time.Time) {
	var abs time.Time
	var rel RelativeTime
	var haveAbs, haveRel bool
	for _, a := range ev.MDSAttrs {
		switch a.ID {
		case AttrTimeAbs:
			if len(a.Value) == 8 {
				abs, haveAbs = AbsoluteTime(a.Value).Time(c.d.cfg.Location)
			}
		case AttrTimeRel:
			var v uint32
			v, haveRel = parseU32(a.Value)
			rel = RelativeTime(v)
		}
	}
	if haveAbs && haveRel {
		c.baseAbs, c.baseRel = abs, rel
	} else {
		c.d.log.Info("intellivue: MDS create event without clock; using the box's clock for values")
	}
}

// monitorTime converts a relative time stamp to the monitor's wall clock.
func (c *conn) monitorTime(rel RelativeTime) time.Time {
	if c.baseAbs.IsZero() {
		return time.Time{}
	}
	return c.baseAbs.Add(time.Duration(int32(rel-c.baseRel)) * 125 * time.Microsecond)
}

var _ telemetry.Driver = (*Driver)(nil)
