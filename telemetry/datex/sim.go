package datex

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

// Faults injects the failures a serial link to a monitor shows in an ambulance. The
// simulator's time zero is the first request; while the cable is pulled the monitor's
// interface forgets the subscriptions, as when the connector is out.
type Faults = telemetry.LineFaults

// SimConfig configures the simulated S/5.
type SimConfig struct {
	Logger   *slog.Logger     // nil: discard
	Scenario *physio.Scenario // nil: a stable adult
	Faults   Faults
	// WavePeriod is how often a waveform record goes out; default 200 ms, which keeps
	// the default wave set within the 19200 baud line.
	WavePeriod time.Duration
	// ECGLeads are the leads shown on ECG1..3 (by index into telemetry.ECG12 order:
	// 0 = I, 1 = II, 2 = III); default II, I, III, as the driver assumes.
	ECGLeads [3]int
	// Sent, if set, is called with the events a faithful driver must produce from each
	// record that left the simulator intact (for tests and the benchmark).
	Sent func(telemetry.Event)
}

// Simulator speaks the monitor's half of the S/5 Computer Interface: it waits for
// requests and sends displayed values, waveforms and alarm status as subscribed.
type Simulator struct {
	cfg SimConfig
	log *slog.Logger
}

// NewSimulator returns a simulated S/5 monitor.
func NewSimulator(cfg SimConfig) *Simulator {
	if cfg.Scenario == nil {
		cfg.Scenario = &physio.Scenario{}
	}
	if cfg.WavePeriod <= 0 {
		cfg.WavePeriod = 200 * time.Millisecond
	}
	if cfg.ECGLeads == [3]int{} {
		cfg.ECGLeads = [3]int{1, 0, 2}
	}
	return &Simulator{cfg: cfg, log: telemetry.DiscardLogger(cfg.Logger).With("sim", "datex")}
}

// Run serves port until ctx ends or the port fails. The port must let reads time out
// (a serial port does; wrap a pty end or a connection in telemetry.DeadlinePort), so that one
// loop both hears requests and keeps the send schedule.
func (s *Simulator) Run(ctx context.Context, port telemetry.Port) error {
	if err := port.SetReadTimeout(10 * time.Millisecond); err != nil {
		return fmt.Errorf("datex sim: %w", err)
	}
	st := newSimState(s)
	buf := make([]byte, 1024)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n, err := port.Read(buf)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("datex sim: read: %w", err)
		}
		now := time.Now()
		if !st.pulled(now) {
			st.hear(buf[:n], now)
		}
		if out := st.due(now); len(out) > 0 {
			if _, err := port.Write(out); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("datex sim: write: %w", err)
			}
		}
	}
}

// simState is one connection's monitor state.
type simState struct {
	s        *Simulator
	rng      *rand.Rand
	d        Deframer
	start    time.Time // first request: the scenario's time zero
	number   byte
	phdbIval time.Duration
	nextPhdb time.Time
	waves    []byte
	nextWave time.Time
	diffMode bool
	sendOnce bool
	alarms   [AlarmSlots]DisplayedAlarm
	ecg      *physio.ECG
	ecgBlock [][12]float32 // this record's ECG samples, shared by the ECG traces
	pleth    *physio.Pleth
	resp     *physio.Resp
	co2      *physio.CO2
	emitted  map[byte]float64 // samples generated per wave type (fractional carry)
	wasOut   bool
}

func newSimState(s *Simulator) *simState {
	return &simState{s: s, rng: rand.New(rand.NewPCG(s.cfg.Faults.Seed, 0x5eed)), emitted: map[byte]float64{}}
}

const ambientTenthsMMHg = 7600 // 760.0 mmHg, reported in the CO2 group

func (st *simState) elapsed(now time.Time) time.Duration { return now.Sub(st.start) }

func (st *simState) pulled(now time.Time) bool {
	f := st.s.cfg.Faults
	if st.start.IsZero() {
		return false
	}
	out := f.Pulled(st.elapsed(now))
	if out && !st.wasOut {
		st.s.log.Info("datex sim: cable pulled", "for", f.PullFor)
		st.phdbIval, st.waves, st.diffMode = 0, nil, false // the interface forgets
		st.d = Deframer{}
	}
	if !out && st.wasOut {
		st.s.log.Info("datex sim: cable back")
	}
	st.wasOut = out
	return out
}

func (st *simState) hear(p []byte, now time.Time) {
	st.d.Feed(p, func(b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			st.s.log.Warn("datex sim: bad request", "err", err)
			return
		}
		if st.start.IsZero() {
			st.start = now
			sc := st.s.cfg.Scenario
			st.ecg, st.pleth = physio.NewECG(sc, 300), physio.NewPleth(sc, 100)
			st.resp, st.co2 = physio.NewResp(sc, 25), physio.NewCO2(sc, 25)
		}
		for _, sr := range r.Subrecords {
			st.request(r.MainType, sr, now)
		}
	}, func(e *FrameError) { st.s.log.Warn("datex sim: request frame dropped", "err", e) })
}

func (st *simState) request(main uint16, sr Subrecord, now time.Time) {
	switch {
	case main == MainPhysiological && sr.Type == PhRequest:
		q, err := ParsePhdbRequest(sr.Data)
		if err != nil || q.RecordType != PhDisplay {
			return
		}
		st.phdbIval = time.Duration(q.Interval) * time.Second
		if st.phdbIval > 0 && st.phdbIval < 5*time.Second {
			st.phdbIval = 5 * time.Second
		}
		st.nextPhdb = now // the first record goes out at once
	case main == MainWave && sr.Type == WaveCmd:
		q, err := ParseWaveRequest(sr.Data)
		if err != nil {
			return
		}
		if q.Type == WaveStop {
			st.waves = nil
			return
		}
		st.waves = st.waves[:0]
		for _, t := range q.Waves {
			if _, ok := LookupWave(t); ok && len(st.waves) < MaxWaves {
				st.waves = append(st.waves, t)
			}
		}
		if st.nextWave.Before(now) {
			st.nextWave = now.Add(st.s.cfg.WavePeriod)
		}
	case main == MainAlarm && sr.Type == AlarmRequest:
		cmd, err := ParseAlarmRequest(sr.Data)
		if err != nil {
			return
		}
		switch cmd {
		case AlarmXmitStatus:
			st.sendOnce = true
		case AlarmEnterDiffMode:
			st.diffMode, st.sendOnce = true, true
		case AlarmExitDiffMode:
			st.diffMode = false
		}
	}
}

// due returns the frames to send now.
func (st *simState) due(now time.Time) []byte {
	if st.start.IsZero() || st.pulled(now) {
		return nil
	}
	var out []byte
	t := st.elapsed(now)
	if st.phdbIval > 0 && !now.Before(st.nextPhdb) {
		out = st.send(out, st.phdbRecord(t, now))
		st.nextPhdb = st.nextPhdb.Add(st.phdbIval)
	}
	for len(st.waves) > 0 && !now.Before(st.nextWave) {
		out = st.send(out, st.waveRecord(st.nextWave))
		st.nextWave = st.nextWave.Add(st.s.cfg.WavePeriod)
	}
	if al, changed := st.alarmState(t); changed && st.diffMode || st.sendOnce {
		st.sendOnce = false
		out = st.send(out, st.alarmRecord(al, now))
	}
	return out
}

// pending pairs a record with the events it carries, reported only if it goes out intact.
type pending struct {
	rec    Record
	events []telemetry.Event
}

func (st *simState) send(out []byte, p pending) []byte {
	p.rec.Number = st.number
	st.number++
	b, err := p.rec.Marshal()
	if err != nil {
		st.s.log.Error("datex sim: record", "err", err)
		return out
	}
	out, intact := st.s.cfg.Faults.Apply(st.rng, out, Frame(b), isFlagOrEscape)
	if intact && st.s.cfg.Sent != nil {
		for _, e := range p.events {
			st.s.cfg.Sent(e)
		}
	}
	return out
}

func isFlagOrEscape(b byte) bool { return b == frameFlag || b == ctrlEsc }

func counts(v, scale float64) int16 {
	c := math.Round(v / scale)
	return int16(max(-32000, min(32767, c)))
}

func (st *simState) phdbRecord(t time.Duration, now time.Time) pending {
	sc := st.s.cfg.Scenario
	v := sc.At(t)
	b := NewBasic()
	present := GroupExists | GroupActive
	mt := now.Truncate(time.Second).UTC()
	var ev []telemetry.Event
	// What the driver must publish: the counts scaled and rounded to the decimals the
	// record carries (0.1 mmHg for the CO2 partial pressures).
	num := func(code telemetry.Code, c int16, scale float64, unit string) {
		decimals := 2
		switch {
		case scale >= 1:
			decimals = 0
		case unit == telemetry.UnitMMHg && scale != 0.01:
			decimals = 1
		}
		ev = append(ev, &telemetry.Numeric{Code: code, Value: telemetry.Decimal(float64(c)*scale, decimals), Unit: unit, MonitorTime: mt})
	}
	b.ECG.Status = present
	b.ECG.HR = counts(v.HR, 1)
	b.ECG.ImpRR = counts(v.RR, 1)
	num(telemetry.MDC_ECG_HEART_RATE, b.ECG.HR, 1, telemetry.UnitPerMinute)
	num(telemetry.MDC_TTHOR_RESP_RATE, b.ECG.ImpRR, 1, telemetry.UnitPerMinute)

	nibp, haveNIBP := sc.LastNIBP(t)
	sysA, diaA := 120.0, 75.0
	if haveNIBP {
		sysA, diaA = nibp.Sys+4, nibp.Dia-2
	}
	b.P[0] = Pressure{GroupHeader: GroupHeader{Status: present, Label: PressART},
		Sys: counts(sysA, 0.01), Dia: counts(diaA, 0.01), Mean: counts(diaA+(sysA-diaA)/3, 0.01), HR: counts(v.HR, 1)}
	num(telemetry.MDC_PRESS_BLD_ART_SYS, b.P[0].Sys, 0.01, telemetry.UnitMMHg)
	num(telemetry.MDC_PRESS_BLD_ART_DIA, b.P[0].Dia, 0.01, telemetry.UnitMMHg)
	num(telemetry.MDC_PRESS_BLD_ART_MEAN, b.P[0].Mean, 0.01, telemetry.UnitMMHg)
	num(telemetry.MDC_BLD_PULS_RATE_INV, b.P[0].HR, 1, telemetry.UnitPerMinute)
	if haveNIBP {
		b.NIBP = Pressure{GroupHeader: GroupHeader{Status: present}, Sys: counts(nibp.Sys, 0.01), Dia: counts(nibp.Dia, 0.01), Mean: counts(nibp.Mean, 0.01), HR: NoData}
		num(telemetry.MDC_PRESS_BLD_NONINV_SYS, b.NIBP.Sys, 0.01, telemetry.UnitMMHg)
		num(telemetry.MDC_PRESS_BLD_NONINV_DIA, b.NIBP.Dia, 0.01, telemetry.UnitMMHg)
		num(telemetry.MDC_PRESS_BLD_NONINV_MEAN, b.NIBP.Mean, 0.01, telemetry.UnitMMHg)
	}
	b.T[0].Status, b.T[0].Temp = present, counts(v.Temp, 0.01)
	num(telemetry.MDC_TEMP, b.T[0].Temp, 0.01, telemetry.UnitCelsius)
	b.SpO2.Status = present
	b.SpO2.SpO2, b.SpO2.PR = counts(v.SpO2, 0.01), counts(v.PR, 1)
	num(telemetry.MDC_PULS_OXIM_SAT_O2, b.SpO2.SpO2, 0.01, telemetry.UnitPercent)
	num(telemetry.MDC_PULS_OXIM_PULS_RATE, b.SpO2.PR, 1, telemetry.UnitPerMinute)
	b.CO2.Status = present
	b.CO2.AmbPress = ambientTenthsMMHg
	pct := func(mmHg float64) int16 { return counts(mmHg/(ambientTenthsMMHg/10)*100, 0.01) }
	b.CO2.Et, b.CO2.Fi, b.CO2.RR = pct(v.EtCO2), pct(v.FiCO2), counts(v.RR, 1)
	mmHg := 0.01 / 100 * ambientTenthsMMHg * 0.1
	num(telemetry.MDC_AWAY_CO2_ET, b.CO2.Et, mmHg, telemetry.UnitMMHg)
	num(telemetry.MDC_AWAY_CO2_INSP_MIN, b.CO2.Fi, mmHg, telemetry.UnitMMHg)
	num(telemetry.MDC_AWAY_RESP_RATE, b.CO2.RR, 1, telemetry.UnitPerMinute)

	p := Phdb{Time: mt, Class: ClassBasic, Subtype: PhDisplay, DRILevel: Level2005 & 0x0F, Basic: b}
	rec := Record{Header: Header{DRILevel: Level2005, Time: mt, MainType: MainPhysiological},
		Subrecords: []Subrecord{{Type: PhDisplay, Data: p.Marshal()}}}
	return pending{rec: rec, events: ev}
}

// waveRecord generates one period of every subscribed wave, ending at end.
func (st *simState) waveRecord(end time.Time) pending {
	rec := Record{Header: Header{DRILevel: Level2005, Time: end.Truncate(time.Second).UTC(), MainType: MainWave}}
	var ev []telemetry.Event
	period := st.s.cfg.WavePeriod.Seconds()
	t := st.elapsed(end)
	nibp, ok := st.s.cfg.Scenario.LastNIBP(t)
	sys, dia := 120.0, 75.0
	if ok {
		sys, dia = nibp.Sys+4, nibp.Dia-2
	}
	st.ecgBlock = st.ecgBlock[:0]
	for _, typ := range st.waves {
		info, _ := LookupWave(typ)
		st.emitted[typ] += info.Rate * period
		n := int(st.emitted[typ])
		st.emitted[typ] -= float64(n)
		w := WaveSubrecord{Type: typ, Samples: make([]int16, n)}
		code, unit := st.simWaveCode(typ)
		exp := &telemetry.Wave{Code: code, Unit: unit, Rate: info.Rate, Samples: make([]float32, n)}
		for i := range w.Samples {
			var v float64
			switch typ {
			case WaveECG1, WaveECG2, WaveECG3:
				v = float64(st.ecgSample(i, int(typ-WaveECG1)))
			case WavePleth:
				v = st.pleth.Next() * 100
			case WaveResp:
				v = st.resp.Next()
			case WaveCO2:
				v = st.co2.Next() / (ambientTenthsMMHg / 10) * 100
			case WaveINVP1:
				v = dia + (sys-dia)*(st.pleth.Next()-0.1)/0.85
			}
			w.Samples[i] = counts(v, info.Scale)
			exp.Samples[i] = float32(float64(w.Samples[i]) * info.Scale)
		}
		rec.Subrecords = append(rec.Subrecords, Subrecord{Type: typ, Data: w.Marshal()})
		ev = append(ev, exp)
	}
	return pending{rec: rec, events: ev}
}

// ecgSample returns sample i of this record on ECG trace k. The generator yields all
// twelve leads per step, so the traces of one record share its steps.
func (st *simState) ecgSample(i, k int) float32 {
	for len(st.ecgBlock) <= i {
		st.ecgBlock = append(st.ecgBlock, st.ecg.Next())
	}
	return st.ecgBlock[i][st.s.cfg.ECGLeads[k]]
}

func (st *simState) simWaveCode(typ byte) (telemetry.Code, string) {
	switch typ {
	case WaveECG1, WaveECG2, WaveECG3:
		return telemetry.ECG12[st.s.cfg.ECGLeads[typ-WaveECG1]], telemetry.UnitMilliVolt
	case WavePleth:
		return telemetry.MDC_PULS_OXIM_PLETH, telemetry.UnitPercent
	case WaveResp:
		return telemetry.MDC_IMPED_TTHOR, telemetry.UnitOhm
	case WaveCO2:
		return telemetry.MDC_AWAY_CO2, telemetry.UnitPercent
	case WaveINVP1:
		return telemetry.MDC_PRESS_BLD_ART, telemetry.UnitMMHg
	}
	return 0, ""
}

// alarmState returns the alarms the patient's state raises and whether they changed.
func (st *simState) alarmState(t time.Duration) ([AlarmSlots]DisplayedAlarm, bool) {
	v := st.s.cfg.Scenario.At(t)
	var al [AlarmSlots]DisplayedAlarm
	i := 0
	if v.VT {
		al[i] = DisplayedAlarm{Text: "V TACH", Priority: AlarmHigh}
		i++
	}
	if v.SpO2 < 90 {
		al[i] = DisplayedAlarm{Text: "SpO2 LOW", Priority: AlarmMedium}
	}
	changed := al != st.alarms
	if changed {
		for k := range al {
			al[k].TextChanged = al[k].Text != st.alarms[k].Text
			al[k].ColorChanged = al[k].Priority != st.alarms[k].Priority
		}
		st.alarms = al
	}
	return al, changed
}

func (st *simState) alarmRecord(al [AlarmSlots]DisplayedAlarm, now time.Time) pending {
	m := AlarmMessage{SoundOn: true, Alarms: al}
	mt := now.Truncate(time.Second).UTC()
	rec := Record{Header: Header{DRILevel: Level2005, Time: mt, MainType: MainAlarm},
		Subrecords: []Subrecord{{Type: AlarmStatus, Data: m.Marshal()}}}
	var ev []telemetry.Event
	for _, a := range al {
		if a.Priority != AlarmNone {
			ev = append(ev, &telemetry.Alarm{Priority: alarmPriority(a.Priority), Text: a.Text, On: true, MonitorTime: mt})
		}
	}
	return pending{rec: rec, events: ev}
}
