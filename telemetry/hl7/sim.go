package hl7

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/physio"
)

// SimConfig configures the simulated monitor. The zero value sends lead II at 250 Hz
// and pleth at 125 Hz every 500 ms and numerics every second, on a clean line.
type SimConfig struct {
	Logger   *slog.Logger     // nil: discard
	Scenario *physio.Scenario // nil: a stable adult
	// Faults of the line: Noise puts 1..8 noise bytes before a message, Drop loses it,
	// Corrupt garbles its header so that it cannot be parsed, and a pulled cable loses
	// every message meanwhile.
	Faults telemetry.LineFaults
	// Leads are the ECG leads sent (default lead II) at ECGRate (default 250 Hz).
	Leads   []telemetry.Code
	ECGRate float64
	// PlethRate is the pleth rate (default 125 Hz; negative: no pleth).
	PlethRate     float64
	NumericsEvery time.Duration // default 1 s
	BlockEvery    time.Duration // default 500 ms
	// CRLF separates segments with CR LF instead of CR, as some vendors do.
	CRLF bool
	// Sent, if set, is called with every event of every message sent intact, before
	// the message is written (so that a latency measurement starts before the driver
	// can have decoded it).
	Sent func(telemetry.Event)
}

// Simulator plays a PCD-01 monitor (in the manner of a Mindray or Comen bedside monitor
// with HL7 output): ORU^R01 numerics every NumericsEvery, waveform ORU^R01 blocks every
// BlockEvery, ORU^R40 alarms when a VT episode starts and ends. It asks for ACKs (MSH-15
// AL) and counts them.
type Simulator struct {
	cfg SimConfig

	acksOK, acksErr atomic.Int64
	sentOK          atomic.Int64
}

// NewSimulator returns a simulated HL7 monitor.
func NewSimulator(cfg SimConfig) *Simulator { return &Simulator{cfg: cfg} }

// Acks returns the AA and AE/AR acknowledgements received so far, and the messages
// sent intact.
func (s *Simulator) Acks() (ok, failed, sent int64) {
	return s.acksOK.Load(), s.acksErr.Load(), s.sentOK.Load()
}

// settings returns the configuration with its defaults filled in.
func (s *Simulator) settings() SimConfig {
	cfg := s.cfg
	if cfg.Scenario == nil {
		cfg.Scenario = &physio.Scenario{}
	}
	if len(cfg.Leads) == 0 {
		cfg.Leads = []telemetry.Code{telemetry.MDC_ECG_ELEC_POTL_II}
	}
	if cfg.ECGRate <= 0 {
		cfg.ECGRate = 250
	}
	if cfg.PlethRate == 0 {
		cfg.PlethRate = 125
	}
	if cfg.NumericsEvery <= 0 {
		cfg.NumericsEvery = time.Second
	}
	if cfg.BlockEvery <= 0 {
		cfg.BlockEvery = 500 * time.Millisecond
	}
	return cfg
}

// simRun is one run of the simulator: the signal generators, what was sent so far and
// the ACKs coming back.
type simRun struct {
	s       *Simulator
	cfg     SimConfig
	log     *slog.Logger
	port    telemetry.Port
	rng     *rand.Rand
	start   time.Time
	ecg     *physio.ECG
	pleth   *physio.Pleth // nil: no pleth
	leadIdx map[telemetry.Code]int

	ctl                int
	ecgSent, plethSent int64
	nextNum            time.Duration
	lastNIBP           time.Duration
	inVT               bool
	acks               Deframer
	rbuf               []byte
}

// Run speaks until ctx ends or the port fails.
func (s *Simulator) Run(ctx context.Context, port telemetry.Port) error {
	cfg := s.settings()
	r := &simRun{s: s, cfg: cfg, log: telemetry.DiscardLogger(cfg.Logger), port: port,
		rng: rand.New(rand.NewPCG(cfg.Faults.Seed, 0x5851f42d4c957f2d)), ecg: physio.NewECG(cfg.Scenario, cfg.ECGRate),
		leadIdx: map[telemetry.Code]int{}, lastNIBP: -1, rbuf: make([]byte, 4096)}
	if cfg.PlethRate > 0 {
		r.pleth = physio.NewPleth(cfg.Scenario, cfg.PlethRate)
	}
	for i, c := range telemetry.ECG12 {
		r.leadIdx[c] = i
	}
	if err := port.SetReadTimeout(20 * time.Millisecond); err != nil {
		return fmt.Errorf("hl7 simulator: %w", err)
	}
	r.start = time.Now()
	tick := time.NewTicker(cfg.BlockEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		el := now.Sub(r.start)
		if err := r.sendWaves(now, el); err != nil {
			return err
		}
		if el >= r.nextNum {
			r.nextNum += cfg.NumericsEvery
			if err := r.sendNumerics(now, el); err != nil {
				return err
			}
		}
		if err := r.collectAcks(); err != nil {
			return err
		}
	}
}

// send writes one message as the faulty line delivers it; evs are the events it
// carries, reported through Sent when it goes out intact.
func (r *simRun) send(msg []byte, evs []telemetry.Event) error {
	if r.cfg.CRLF {
		msg = bytes.ReplaceAll(msg, []byte("\r"), []byte("\r\n"))
	}
	var out []byte
	if r.cfg.Faults.Pulled(time.Since(r.start)) {
		return nil // the cable is out: the message is lost, and so is its noise
	}
	if r.rng.Float64() < r.cfg.Faults.Noise {
		for range 1 + r.rng.IntN(8) {
			b := byte(r.rng.Uint32())
			if b == StartBlock || b == EndBlock {
				b = '?'
			}
			out = append(out, b)
		}
	}
	intact := true
	switch {
	case r.rng.Float64() < r.cfg.Faults.Drop:
		intact = false
	case r.rng.Float64() < r.cfg.Faults.Corrupt:
		bad := append([]byte("XSH"), msg[3:]...)
		out = Frame(out, bad)
		intact = false
	default:
		out = Frame(out, msg)
	}
	// Report before writing, so an observer timing the path sees the send time before
	// the receiver can possibly have decoded it.
	if intact {
		r.s.sentOK.Add(1)
		if r.cfg.Sent != nil {
			for _, e := range evs {
				r.cfg.Sent(e)
			}
		}
	}
	if len(out) > 0 {
		if _, err := r.port.Write(out); err != nil {
			return fmt.Errorf("hl7 simulator: write: %w", err)
		}
	}
	return nil
}

func (r *simRun) header(now time.Time) Header {
	r.ctl++
	return Header{SendingApp: "LIFELINE-SIM^00A0370000000001^EUI-64", Facility: "AMBULANCE", ControlID: strconv.Itoa(r.ctl), Time: now, AckType: "AL"}
}

// sendWaves sends every ECG and pleth sample due since the last block, in one message.
func (r *simRun) sendWaves(now time.Time, el time.Duration) error {
	var waves []*telemetry.Wave
	ecgRate, plethRate := r.cfg.ECGRate, r.cfg.PlethRate
	if nECG := int64(el.Seconds()*ecgRate) - r.ecgSent; nECG > 0 {
		blockStart := r.start.Add(time.Duration(float64(r.ecgSent) / ecgRate * float64(time.Second)))
		per := make([][]float32, len(r.cfg.Leads))
		for range nECG {
			v := r.ecg.Next()
			for k, c := range r.cfg.Leads {
				per[k] = append(per[k], quant(v[r.leadIdx[c]], 1000))
			}
		}
		r.ecgSent += nECG
		for k, c := range r.cfg.Leads {
			waves = append(waves, &telemetry.Wave{Code: c, Unit: telemetry.UnitMilliVolt, Rate: ecgRate, MonitorStart: blockStart, Samples: per[k]})
		}
	}
	if r.pleth != nil {
		if nP := int64(el.Seconds()*plethRate) - r.plethSent; nP > 0 {
			w := &telemetry.Wave{Code: telemetry.MDC_PULS_OXIM_PLETH, Unit: telemetry.UnitNone, Rate: plethRate,
				MonitorStart: r.start.Add(time.Duration(float64(r.plethSent) / plethRate * float64(time.Second)))}
			for range nP {
				w.Samples = append(w.Samples, quant(float32(r.pleth.Next()*100), 10))
			}
			r.plethSent += nP
			waves = append(waves, w)
		}
	}
	if len(waves) == 0 {
		return nil
	}
	evs := make([]telemetry.Event, len(waves))
	for i, w := range waves {
		evs[i] = w
	}
	return r.send(EncodeORU(r.header(now), nil, waves), evs)
}

// sendNumerics sends the vital signs, a new NIBP reading, and the VT alarm when the
// episode starts or ends.
func (r *simRun) sendNumerics(now time.Time, el time.Duration) error {
	sc := r.cfg.Scenario
	st := sc.At(el)
	mt := now.Truncate(time.Millisecond)
	num := func(c telemetry.Code, v float64, unit string) *telemetry.Numeric {
		return &telemetry.Numeric{Code: c, Value: v, Unit: unit, MonitorTime: mt}
	}
	nums := []*telemetry.Numeric{
		num(telemetry.MDC_ECG_HEART_RATE, math.Round(st.HR), telemetry.UnitPerMinute),
		num(telemetry.MDC_PULS_OXIM_SAT_O2, st.SpO2, telemetry.UnitPercent),
		num(telemetry.MDC_PULS_OXIM_PULS_RATE, math.Round(st.PR), telemetry.UnitPerMinute),
		num(telemetry.MDC_TTHOR_RESP_RATE, math.Round(st.RR), telemetry.UnitPerMinute),
		num(telemetry.MDC_AWAY_CO2_ET, math.Round(st.EtCO2), telemetry.UnitMMHg),
		num(telemetry.MDC_TEMP, st.Temp, telemetry.UnitCelsius),
		num(telemetry.MDC_PULS_OXIM_PERF_REL, st.PI, telemetry.UnitPercent),
	}
	if p, ok := sc.LastNIBP(el); ok && p.At != r.lastNIBP {
		r.lastNIBP = p.At
		meas := r.start.Add(p.At).Truncate(time.Millisecond)
		nums = append(nums, telemetry.NIBP{Sys: p.Sys, Dia: p.Dia, Mean: p.Mean, Unit: telemetry.UnitMMHg, Measured: meas, MonitorTime: meas}.Numerics()...)
	}
	evs := make([]telemetry.Event, len(nums))
	for i, n := range nums {
		evs[i] = n
	}
	if err := r.send(EncodeORU(r.header(now), nums, nil), evs); err != nil {
		return err
	}
	if st.VT == r.inVT {
		return nil
	}
	r.inVT = st.VT
	a := &telemetry.Alarm{Priority: telemetry.PriorityHigh, Text: "VTACH", Code: telemetry.MDC_ECG_HEART_RATE, On: r.inVT, MonitorTime: mt}
	return r.send(EncodeAlarms(r.header(now), []*telemetry.Alarm{a}), []telemetry.Event{a})
}

// collectAcks reads the ACKs that arrived meanwhile and counts them.
func (r *simRun) collectAcks() error {
	for {
		n, err := r.port.Read(r.rbuf)
		if n > 0 {
			msgs, _, _ := r.acks.Feed(r.rbuf[:n])
			for _, raw := range msgs {
				r.countAck(raw)
			}
		}
		if err != nil {
			return fmt.Errorf("hl7 simulator: read: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
}

func (r *simRun) countAck(raw []byte) {
	m, err := Parse(raw)
	if err != nil {
		return
	}
	msa, ok := m.Segment("MSA")
	if ok && msa.Value(1) == "AA" {
		r.s.acksOK.Add(1)
		return
	}
	r.s.acksErr.Add(1)
	r.log.Warn("hl7 simulator: the box did not accept a message", "code", msa.Value(1), "message", msa.Value(2), "text", msa.Value(3))
}

// quant rounds v to 1/steps, as a monitor's fixed-point output does.
func quant(v float32, steps float64) float32 {
	return float32(math.Round(float64(v)*steps) / steps)
}
