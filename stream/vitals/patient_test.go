package vitals

import (
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/physio"
)

// patient produces the events a 12-lead monitor publishes, from the physio generators
// the monitor simulators use: 12 ECG leads at 500 Hz in 50-sample blocks, pleth at
// 100 Hz, respiration at 50 Hz, numerics every second, NIBP when a cuff cycle ends,
// and a VT alarm raised and cleared with the scenario's episode.
type patient struct {
	sc     physio.Scenario
	start  time.Time
	ecg    *physio.ECG
	pleth  *physio.Pleth
	resp   *physio.Resp
	n      int // 10 ms ticks so far
	vt     bool
	nibpAt time.Duration
	tl     telemetry.Timeline
}

const ecgRate, ecgBlock = 500, 50

func newPatient(start time.Time) *patient {
	p := &patient{
		sc:    physio.Scenario{VTAt: 3 * time.Second, VTFor: 4 * time.Second, NIBPEvery: 6 * time.Second},
		start: start,
	}
	p.ecg = physio.NewECG(&p.sc, ecgRate)
	p.pleth = physio.NewPleth(&p.sc, 100)
	p.resp = physio.NewResp(&p.sc, 50)
	return p
}

// next returns the events of the next 100 ms of monitoring, in the order a reader
// publishes them.
func (p *patient) next() []telemetry.Event {
	var out []telemetry.Event
	elapsed := time.Duration(p.n) * 10 * time.Millisecond
	p.n += 10
	now := p.start.Add(elapsed + 100*time.Millisecond)
	leads := make([][]float32, 12)
	for range ecgBlock {
		s := p.ecg.Next()
		for l := range leads {
			leads[l] = append(leads[l], s[l])
		}
	}
	for l, code := range telemetry.ECG12 {
		out = append(out, p.wave(code, telemetry.UnitMilliVolt, ecgRate, leads[l], now))
	}
	pl := make([]float32, 10)
	for i := range pl {
		pl[i] = float32(p.pleth.Next())
	}
	out = append(out, p.wave(telemetry.MDC_PULS_OXIM_PLETH, telemetry.UnitNone, 100, pl, now))
	rs := make([]float32, 5)
	for i := range rs {
		rs[i] = float32(p.resp.Next())
	}
	out = append(out, p.wave(telemetry.MDC_IMPED_TTHOR, telemetry.UnitOhm, 50, rs, now))
	if p.n%100 == 0 {
		out = append(out, p.numerics(elapsed, now)...)
	}
	return out
}

func (p *patient) wave(code telemetry.Code, unit string, rate float64, s []float32, now time.Time) *telemetry.Wave {
	w := &telemetry.Wave{Code: code, Unit: unit, Rate: rate, Samples: s, ReceiveTime: now,
		MonitorStart: now.Add(-time.Duration(float64(len(s)) / rate * float64(time.Second)))}
	p.tl.Place(w)
	return w
}

func (p *patient) numerics(elapsed time.Duration, now time.Time) []telemetry.Event {
	st := p.sc.At(elapsed)
	mt := now.Add(-20 * time.Millisecond)
	num := func(c telemetry.Code, v float64, unit string) *telemetry.Numeric {
		return &telemetry.Numeric{Code: c, Value: v, Unit: unit, MonitorTime: mt, ReceiveTime: now}
	}
	out := []telemetry.Event{
		num(telemetry.MDC_ECG_HEART_RATE, st.HR, telemetry.UnitPerMinute),
		num(telemetry.MDC_PULS_OXIM_SAT_O2, st.SpO2, telemetry.UnitPercent),
		num(telemetry.MDC_PULS_OXIM_PULS_RATE, st.PR, telemetry.UnitPerMinute),
		num(telemetry.MDC_TTHOR_RESP_RATE, st.RR, telemetry.UnitPerMinute),
		num(telemetry.MDC_AWAY_CO2_ET, st.EtCO2, telemetry.UnitMMHg),
		num(telemetry.MDC_TEMP_BODY, st.Temp, telemetry.UnitCelsius),
		num(telemetry.MDC_PULS_OXIM_PERF_REL, st.PI, telemetry.UnitPercent),
	}
	if b, ok := p.sc.LastNIBP(elapsed); ok && b.At != p.nibpAt {
		p.nibpAt = b.At
		nibp := telemetry.NIBP{Sys: b.Sys, Dia: b.Dia, Mean: b.Mean, Measured: p.start.Add(b.At), MonitorTime: mt, ReceiveTime: now}
		for _, n := range nibp.Numerics() {
			out = append(out, n)
		}
	}
	if st.VT != p.vt {
		p.vt = st.VT
		out = append(out, &telemetry.Alarm{Priority: telemetry.PriorityHigh, Text: "VTACH", Code: telemetry.MDC_ECG_HEART_RATE, On: st.VT, MonitorTime: mt, ReceiveTime: now})
	}
	return out
}
