package intellivue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/physio"
)

// Faults injects the failures of a serial link in an ambulance. The simulator's time
// zero is the association; while the cable is pulled the monitor hears nothing, sends
// nothing, and drops the association.
type Faults = telemetry.LineFaults

// SimConfig configures the simulated IntelliVue.
type SimConfig struct {
	Logger   *slog.Logger // nil: discard
	Scenario *physio.Scenario
	Faults   Faults
	// Leads are the ECG leads exported as waves, by index in telemetry.ECG12 order;
	// default lead II only. All twelve make a 12-lead export at 500 Hz each.
	Leads []int
	// AssocTimeout drops an association the box is silent on; default 10 s.
	AssocTimeout time.Duration
	// Sent, if set, receives the events a faithful driver must produce from what left
	// the simulator intact.
	Sent func(telemetry.Event)
}

// Simulator plays the monitor's half of Data Export.
type Simulator struct {
	cfg SimConfig
	log *slog.Logger
}

// NewSimulator returns a simulated IntelliVue monitor.
func NewSimulator(cfg SimConfig) *Simulator {
	if cfg.Scenario == nil {
		cfg.Scenario = &physio.Scenario{}
	}
	if len(cfg.Leads) == 0 {
		cfg.Leads = []int{1}
	}
	if cfg.AssocTimeout <= 0 {
		cfg.AssocTimeout = 10 * time.Second
	}
	return &Simulator{cfg: cfg, log: telemetry.DiscardLogger(cfg.Logger).With("sim", "intellivue")}
}

// Rates of the exported waves: ECG 500 Hz, pleth and ABP 125 Hz, respiration 62.5 Hz; a
// result every 256 ms carries 128, 32 and 16 samples.
const (
	waveResultEvery = 256 * time.Millisecond
	ecgPeriod       = RelativeTime(16) // 2 ms in 1/8 ms
	plethPeriod     = RelativeTime(64)
	respPeriod      = RelativeTime(128)
)

type simWave struct {
	handle uint16
	physio uint16
	unit   uint16
	period RelativeTime
	scale  Scale
	bits   uint8
	next   func() float64
}

type extPoll struct {
	invoke uint16
	number uint16
	class  uint16
	group  uint16
	end    time.Time
	next   time.Time
	seq    uint16
}

type simConn struct {
	s        *Simulator
	rng      *rand.Rand
	d        Deframer
	assoc    bool
	waitRes  bool
	eventAt  time.Time
	heard    time.Time
	t0       time.Time // association time: wall clock at rel0
	rel0     RelativeTime
	invoke   uint16
	polls    []*extPoll
	waves    []simWave
	ecgBlock [][12]float32 // this result's ECG steps, shared by the exported leads
	ecgIndex []int
	ecg      *physio.ECG
	specSent bool // a result with the wave specifications went out intact
	pulled   bool
	started  time.Time
}

// Run serves port until ctx ends or the port fails. The port must let reads time out
// (a serial port does; wrap a pty end or a connection in telemetry.DeadlinePort).
func (s *Simulator) Run(ctx context.Context, port telemetry.Port) error {
	if err := port.SetReadTimeout(10 * time.Millisecond); err != nil {
		return fmt.Errorf("intellivue sim: %w", err)
	}
	c := &simConn{s: s, rng: rand.New(rand.NewPCG(s.cfg.Faults.Seed, 0x1e1)), rel0: 0x00100000}
	buf := make([]byte, 4096)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n, err := port.Read(buf)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("intellivue sim: read: %w", err)
		}
		now := time.Now()
		var out []byte
		if !c.pull(now) {
			out = c.hear(buf[:n], now, out)
			out = c.due(now, out)
		}
		if len(out) > 0 {
			if _, err := port.Write(out); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("intellivue sim: write: %w", err)
			}
		}
	}
}

func (c *simConn) pull(now time.Time) bool {
	f := c.s.cfg.Faults
	if c.started.IsZero() {
		return false
	}
	out := f.Pulled(now.Sub(c.started))
	if out && !c.pulled {
		c.s.log.Info("intellivue sim: cable pulled", "for", f.PullFor)
		c.assoc, c.waitRes, c.polls, c.d = false, false, nil, Deframer{}
	}
	c.pulled = out
	return out
}

func (c *simConn) rel(now time.Time) RelativeTime { return c.rel0 + Rel(now.Sub(c.t0)) }

// monitorTime is what the driver must compute from a relative time stamp.
func (c *simConn) monitorTime(r RelativeTime) time.Time {
	return c.t0.Add(time.Duration(int32(r-c.rel0)) * 125 * time.Microsecond)
}

// frame adds userData to out with the configured faults; it reports whether the frame
// went out intact.
func (c *simConn) frame(out, userData []byte) ([]byte, bool) {
	return c.s.cfg.Faults.Apply(c.rng, out, Frame(userData), isDelimiter)
}

func isDelimiter(b byte) bool { return b == bof || b == eof || b == esc }

func (c *simConn) hear(p []byte, now time.Time, out []byte) []byte {
	c.d.Feed(p, func(m []byte) {
		c.heard = now
		out = c.request(append([]byte(nil), m...), now, out)
	}, func(e *FrameError) { c.s.log.Warn("intellivue sim: frame from the box dropped", "err", e) })
	return out
}

func (c *simConn) request(m []byte, now time.Time, out []byte) []byte {
	switch m[0] {
	case SPDUConnect:
		if _, _, err := ParseAssociation(m); err != nil {
			c.s.log.Warn("intellivue sim: bad association request", "err", err)
			return out
		}
		if c.assoc || c.waitRes {
			out, _ = c.frame(out, []byte{SPDURefuse, 0x00})
			return out
		}
		c.associate(now)
		resp := UserInfo{SystemType: systemServer, MinPollPeriod: 0x09C4, MaxMTURx: 0x03E8, MaxMTUTx: 0x09C4,
			Options: PollOptDynCreate | PollOptDynDelete, ExtOptions: PollExtNu1s | PollExtRTSA | PollExtEnum}
		out, _ = c.frame(out, AssociationResponse(resp))
		out = c.mdsCreate(now, out)
	case SPDUAbort:
		c.assoc, c.waitRes, c.polls = false, false, nil
	case SPDUFinish:
		out, _ = c.frame(out, ReleaseResponse())
		c.assoc, c.waitRes, c.polls = false, false, nil
	case SPDUData:
		msg, err := ParseMessage(m)
		if err != nil {
			c.s.log.Warn("intellivue sim: bad data message", "err", err)
			return out
		}
		switch {
		case msg.RO == ROResult && msg.Command == CmdConfirmedEventReport && c.waitRes:
			c.waitRes, c.assoc = false, true
		case msg.RO == ROInvoke && msg.Command == CmdConfirmedAction && c.assoc:
			p, err := ParsePollRequest(msg.Body)
			if err != nil {
				c.s.log.Warn("intellivue sim: bad poll", "err", err)
				return out
			}
			out = c.startPoll(msg.InvokeID, p, now, out)
		}
	}
	return out
}

func (c *simConn) associate(now time.Time) {
	c.waitRes, c.assoc, c.polls, c.specSent = true, false, nil, false
	c.t0 = now.Truncate(10 * time.Millisecond) // the BCD clock has 1/100 s
	if c.started.IsZero() {
		c.started = now
	}
	sc := c.s.cfg.Scenario
	c.ecg = physio.NewECG(sc, 500)
	pleth, abp := physio.NewPleth(sc, 125), physio.NewPleth(sc, 125)
	resp := physio.NewResp(sc, 62.5)
	c.waves = c.waves[:0]
	ecgScale := Scale{LowerAbs: MakeFloat(-10.24, 2), UpperAbs: MakeFloat(10.24, 2), LowerScaled: 0, UpperScaled: 4096}
	for i, lead := range c.s.cfg.Leads {
		lead, k := lead, i
		c.waves = append(c.waves, simWave{handle: 0x100 + uint16(i), physio: ecg12[lead], unit: DimMilliVolt, period: ecgPeriod, scale: ecgScale, bits: 14,
			next: func() float64 { return float64(c.ecgSample(k, lead)) }})
	}
	start := now
	c.waves = append(c.waves,
		simWave{handle: 0x120, physio: NomPleth, unit: DimDimless, period: plethPeriod,
			scale: Scale{LowerAbs: MakeFloat(0, 0), UpperAbs: MakeFloat(1, 0), LowerScaled: 0, UpperScaled: 4095}, bits: 12, next: pleth.Next},
		simWave{handle: 0x121, physio: NomABP, unit: DimMMHg, period: plethPeriod,
			scale: Scale{LowerAbs: MakeFloat(-40, 0), UpperAbs: MakeFloat(520, 0), LowerScaled: 0x00A0, UpperScaled: 0x23A0}, bits: 14,
			next: func() float64 {
				n, ok := sc.LastNIBP(time.Since(start))
				sys, dia := 120.0, 75.0
				if ok {
					sys, dia = n.Sys+4, n.Dia-2
				}
				return dia + (sys-dia)*(abp.Next()-0.1)/0.85
			}},
		simWave{handle: 0x122, physio: NomResp, unit: DimOhm, period: respPeriod,
			scale: Scale{LowerAbs: MakeFloat(-2, 0), UpperAbs: MakeFloat(2, 0), LowerScaled: 0, UpperScaled: 4000}, bits: 12, next: resp.Next})
}

// ecgSample returns this result's sample for trace k; all traces step the generator once
// per sample period.
func (c *simConn) ecgSample(k, lead int) float32 {
	i := c.ecgIndex[k]
	c.ecgIndex[k]++
	for len(c.ecgBlock) <= i {
		c.ecgBlock = append(c.ecgBlock, c.ecg.Next())
	}
	return c.ecgBlock[i][lead]
}

func (c *simConn) mdsCreate(now time.Time, out []byte) []byte {
	c.invoke++
	c.eventAt = now
	ev := EventReport{Object: MDS, Time: c.rel(now), Type: EventMDSCreate, MDS: MDS, MDSAttrs: []AVA{
		{AttrTimeAbs, func() []byte { a := MakeAbsoluteTime(c.t0.UTC()); return a[:] }()},
		{AttrTimeRel, u32Value(uint32(c.rel0))},
	}}
	m := Message{RO: ROInvoke, InvokeID: c.invoke, Command: CmdConfirmedEventReport, Body: ev.Marshal()}
	out, _ = c.frame(out, m.Marshal())
	return out
}

func (c *simConn) startPoll(invoke uint16, p PollRequest, now time.Time, out []byte) []byte {
	if !p.Ext {
		// A single poll (the keep-alive): answer with the MDS attributes asked for.
		r := PollReply{PollNumber: p.PollNumber, RelTime: c.rel(now), AbsTime: MakeAbsoluteTime(now.UTC()), ObjClass: p.ObjClass, AttrGroup: p.AttrGroup,
			Contexts: []ContextPoll{{Objects: []ObservationPoll{{Handle: 0, Attrs: []AVA{{AttrTimeRel, u32Value(uint32(c.rel(now)))}}}}}}}
		m := Message{RO: ROResult, InvokeID: invoke, Command: CmdConfirmedAction, Body: r.Marshal()}
		out, _ = c.frame(out, m.Marshal())
		return out
	}
	// A renewed poll of a class replaces the running one.
	for i, q := range c.polls {
		if q.class == p.ObjClass {
			c.polls = append(c.polls[:i], c.polls[i+1:]...)
			break
		}
	}
	period := p.Period.Duration()
	if period <= 0 {
		period = time.Millisecond // one result
	}
	c.polls = append(c.polls, &extPoll{invoke: invoke, number: p.PollNumber, class: p.ObjClass, group: p.AttrGroup, end: now.Add(period), next: now})
	return out
}

// due sends what the schedule asks for now.
func (c *simConn) due(now time.Time, out []byte) []byte {
	if c.waitRes && now.Sub(c.eventAt) >= 3*time.Second {
		out = c.mdsCreate(now, out) // the box did not confirm: report again
	}
	if !c.assoc {
		return out
	}
	if now.Sub(c.heard) >= c.s.cfg.AssocTimeout {
		c.s.log.Warn("intellivue sim: the box is silent; aborting the association")
		out, _ = c.frame(out, Abort())
		c.assoc, c.polls = false, nil
		return out
	}
	kept := c.polls[:0]
	for _, p := range c.polls {
		finished := false
		for !finished && !now.Before(p.next) {
			finished = !p.next.Before(p.end)
			out = c.result(p, p.next, finished, out)
			if p.class == ClassRTSA {
				p.next = p.next.Add(waveResultEvery)
			} else {
				p.next = p.next.Add(time.Second)
			}
		}
		if !finished {
			kept = append(kept, p)
		}
	}
	c.polls = kept
	return out
}

func (c *simConn) result(p *extPoll, at time.Time, last bool, out []byte) []byte {
	rel := c.rel(at)
	mt := c.monitorTime(rel)
	r := PollReply{Ext: true, PollNumber: p.number, Sequence: p.seq, RelTime: rel, AbsTime: MakeAbsoluteTime(mt.UTC()), ObjClass: p.class, AttrGroup: p.group}
	var events []telemetry.Event
	withSpec := false
	switch p.class {
	case ClassNumeric:
		r.Contexts, events = c.numerics(at, mt)
	case ClassRTSA:
		withSpec = !c.specSent || p.seq%4 == 0
		r.Contexts, events = c.waveResult(mt, withSpec)
	case ClassAlertMon:
		r.Contexts, events = c.alertResult(at, mt)
	}
	state := LinkedMiddle
	switch {
	case last:
		state = LinkedLast
	case p.seq == 0:
		state = LinkedFirst
	}
	p.seq++
	m := Message{RO: ROLinkedResult, LinkedState: state, LinkedCount: uint8(p.seq), InvokeID: p.invoke, Command: CmdConfirmedAction, Body: r.Marshal()}
	out, ok := c.frame(out, m.Marshal())
	if ok && withSpec {
		c.specSent = true
	}
	if ok && c.s.cfg.Sent != nil {
		for _, e := range events {
			if _, isWave := e.(*telemetry.Wave); isWave && !c.specSent {
				continue // the box cannot scale these yet: not expected
			}
			c.s.cfg.Sent(e)
		}
	}
	return out
}

func (c *simConn) elapsed(at time.Time) time.Duration { return at.Sub(c.started) }

func (c *simConn) numerics(at, mt time.Time) ([]ContextPoll, []telemetry.Event) {
	sc := c.s.cfg.Scenario
	v := sc.At(c.elapsed(at))
	var objs []ObservationPoll
	var events []telemetry.Event
	add := func(handle, id, unit uint16, value float64, decimals int, extra ...AVA) {
		n := NuObs{PhysioID: id, Unit: unit, Value: MakeFloat(value, decimals)}
		attrs := append([]AVA{{AttrType, typeValue(PartSCADA, id)}, {AttrNuValObs, n.Encode()}}, extra...)
		objs = append(objs, ObservationPoll{Handle: handle, Attrs: attrs})
		fv, _ := n.Value.Value()
		u, _ := Unit(unit)
		code, _ := Lookup(id)
		events = append(events, &telemetry.Numeric{Code: code, Value: fv, Unit: u, MonitorTime: mt})
	}
	add(1, NomECGHeartRate, DimBeatPerMin, v.HR, 0)
	add(2, NomSpO2, DimPercent, v.SpO2, 0)
	add(3, NomPlethRate, DimBeatPerMin, v.PR, 0)
	add(4, NomRespRate, DimRespPerMin, v.RR, 0)
	add(5, NomEtCO2, DimMMHg, v.EtCO2, 0)
	add(6, NomFiCO2, DimMMHg, v.FiCO2, 0)
	add(7, NomTemp, DimDegC, v.Temp, 1)
	if n, ok := sc.LastNIBP(c.elapsed(at)); ok {
		measured := c.started.Add(n.At).Truncate(10 * time.Millisecond).UTC()
		ns := []NuObs{{NomNIBPSys, 0, DimMMHg, MakeFloat(n.Sys, 0)}, {NomNIBPDia, 0, DimMMHg, MakeFloat(n.Dia, 0)}, {NomNIBPMean, 0, DimMMHg, MakeFloat(n.Mean, 0)}}
		stamp := MakeAbsoluteTime(measured)
		objs = append(objs, ObservationPoll{Handle: 8, Attrs: []AVA{{AttrType, typeValue(PartSCADA, NomNIBP)}, {AttrNuCmpdValObs, EncodeNuCmpd(ns)}, {AttrStampAbs, stamp[:]}}})
		for _, o := range ns {
			code, _ := Lookup(o.PhysioID)
			fv, _ := o.Value.Value()
			events = append(events, &telemetry.Numeric{Code: code, Value: fv, Unit: telemetry.UnitMMHg, MonitorTime: mt, Measured: measured})
		}
	}
	return []ContextPoll{{Objects: objs}}, events
}

func (c *simConn) waveResult(mt time.Time, withSpec bool) ([]ContextPoll, []telemetry.Event) {
	var objs []ObservationPoll
	var events []telemetry.Event
	c.ecgBlock = c.ecgBlock[:0]
	c.ecgIndex = make([]int, len(c.s.cfg.Leads))
	for _, w := range c.waves {
		n := int(waveResultEvery / w.period.Duration())
		samples := make([]byte, 2*n)
		exp := &telemetry.Wave{Rate: 1 / w.period.Duration().Seconds(), Samples: make([]float32, n)}
		exp.Code, _ = Lookup(w.physio)
		exp.Unit, _ = Unit(w.unit)
		lo, _ := w.scale.LowerAbs.Value()
		hi, _ := w.scale.UpperAbs.Value()
		step := (hi - lo) / float64(w.scale.UpperScaled-w.scale.LowerScaled)
		for i := 0; i < n; i++ {
			raw := math.Round((w.next()-lo)/step) + float64(w.scale.LowerScaled)
			r := uint16(max(0, min(float64(uint16(1)<<w.bits-1), raw)))
			samples[2*i], samples[2*i+1] = byte(r>>8), byte(r)
			exp.Samples[i] = float32(w.scale.Physical(r))
		}
		exp.MonitorStart = mt.Add(-waveResultEvery)
		attrs := []AVA{{AttrType, typeValue(PartSCADA, w.physio)}, {AttrSaValObs, SaObs{PhysioID: w.physio, Samples: samples}.Encode()}}
		if withSpec {
			attrs = append(attrs,
				AVA{AttrSaSpec, SaSpec{ArraySize: uint16(n), SampleSize: 16, SignificantBits: w.bits}.Encode()},
				AVA{AttrScaleSpec, w.scale.Encode()},
				AVA{AttrSamplePeriod, u32Value(uint32(w.period))},
				AVA{AttrUnitCode, u16Value(w.unit)})
		}
		objs = append(objs, ObservationPoll{Handle: w.handle, Attrs: attrs})
		events = append(events, exp)
	}
	return []ContextPoll{{Objects: objs}}, events
}

func (c *simConn) alertResult(at, mt time.Time) ([]ContextPoll, []telemetry.Event) {
	v := c.s.cfg.Scenario.At(c.elapsed(at))
	var list []DevAlarm
	if v.VT {
		list = append(list, DevAlarm{Source: NomECGHeartRate, Code: 0x3006, Type: AlarmHighP, Text: "***VTACH"})
	}
	if v.SpO2 < 90 {
		list = append(list, DevAlarm{Source: NomSpO2, Code: 0x3002, Type: AlarmMedP, Text: "**SpO2 LOW"})
	}
	var events []telemetry.Event
	for _, a := range list {
		code, _ := Lookup(a.Source)
		events = append(events, &telemetry.Alarm{Priority: alarmPriority(a.Type), Text: a.Text, Code: code, On: true, MonitorTime: mt})
	}
	obj := ObservationPoll{Handle: 0x200, Attrs: []AVA{{AttrAlarmsP, EncodeAlarmList(list)}, {AttrAlarmsT, EncodeAlarmList(nil)}}}
	return []ContextPoll{{Objects: []ObservationPoll{obj}}}, events
}
