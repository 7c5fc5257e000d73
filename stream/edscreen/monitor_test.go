package edscreen

import (
	"context"
	"math"
	"sync"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/physio"
)

// Rates of the simulated monitor's waves: what the page must draw per second.
const (
	ecgRate   = 500
	plethRate = 100
	respRate  = 50
)

// simMonitor is a patient monitor in real time: every 100 ms it publishes on the bus
// the ECG (leads I, II, V1), pleth and respiration samples that became due, from the
// physio generators the monitor simulators use, and every second the numerics (HR,
// SpO2, PR, RR, EtCO2, Temp) and the last NIBP. It keeps what it published last, for
// the test to compare with what the page shows.
type simMonitor struct {
	bus   *telemetry.Bus
	sc    physio.Scenario
	ecg   *physio.ECG
	pleth *physio.Pleth
	resp  *physio.Resp

	mu      sync.Mutex
	t0      time.Time
	sent    map[telemetry.Code]int // samples published per wave
	numeric map[telemetry.Code]float64
}

func newSimMonitor(bus *telemetry.Bus) *simMonitor {
	m := &simMonitor{bus: bus, sc: physio.Scenario{HR: 84, NIBPEvery: 6 * time.Second},
		sent: map[telemetry.Code]int{}, numeric: map[telemetry.Code]float64{}}
	m.ecg = physio.NewECG(&m.sc, ecgRate)
	m.pleth = physio.NewPleth(&m.sc, plethRate)
	m.resp = physio.NewResp(&m.sc, respRate)
	return m
}

// run publishes until ctx ends.
func (m *simMonitor) run(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	m.mu.Lock()
	m.t0 = time.Now()
	m.mu.Unlock()
	nextNumerics := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			elapsed := now.Sub(m.t0)
			m.waves(now, elapsed)
			if elapsed >= nextNumerics {
				m.numerics(now, elapsed)
				nextNumerics += time.Second
			}
		}
	}
}

// due is how many samples of a signal at rate are due by elapsed, less those sent.
func (m *simMonitor) due(code telemetry.Code, rate float64, elapsed time.Duration) (n int, start time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sent := m.sent[code]
	n = int(math.Floor(elapsed.Seconds()*rate)) - sent
	start = m.t0.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
	m.sent[code] = sent + max(n, 0)
	return n, start
}

func (m *simMonitor) waves(now time.Time, elapsed time.Duration) {
	n, start := m.due(telemetry.MDC_ECG_ELEC_POTL_II, ecgRate, elapsed)
	m.due(telemetry.MDC_ECG_ELEC_POTL_I, ecgRate, elapsed)
	m.due(telemetry.MDC_ECG_ELEC_POTL_V1, ecgRate, elapsed)
	leads := map[telemetry.Code][]float32{}
	for range max(n, 0) {
		s := m.ecg.Next()
		leads[telemetry.MDC_ECG_ELEC_POTL_I] = append(leads[telemetry.MDC_ECG_ELEC_POTL_I], s[0])
		leads[telemetry.MDC_ECG_ELEC_POTL_II] = append(leads[telemetry.MDC_ECG_ELEC_POTL_II], s[1])
		leads[telemetry.MDC_ECG_ELEC_POTL_V1] = append(leads[telemetry.MDC_ECG_ELEC_POTL_V1], s[6])
	}
	for _, code := range []telemetry.Code{telemetry.MDC_ECG_ELEC_POTL_II, telemetry.MDC_ECG_ELEC_POTL_I, telemetry.MDC_ECG_ELEC_POTL_V1} {
		m.publishWave(code, telemetry.UnitMilliVolt, ecgRate, start, now, leads[code])
	}
	if n, start := m.due(telemetry.MDC_PULS_OXIM_PLETH, plethRate, elapsed); n > 0 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(m.pleth.Next())
		}
		m.publishWave(telemetry.MDC_PULS_OXIM_PLETH, telemetry.UnitNone, plethRate, start, now, s)
	}
	if n, start := m.due(telemetry.MDC_IMPED_TTHOR, respRate, elapsed); n > 0 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(m.resp.Next())
		}
		m.publishWave(telemetry.MDC_IMPED_TTHOR, telemetry.UnitOhm, respRate, start, now, s)
	}
}

func (m *simMonitor) publishWave(code telemetry.Code, unit string, rate float64, start, now time.Time, s []float32) {
	if len(s) == 0 {
		return
	}
	m.bus.Publish("monitor0", &telemetry.Wave{Code: code, Unit: unit, Rate: rate, Start: start, ReceiveTime: now, Samples: s})
}

func (m *simMonitor) numerics(now time.Time, elapsed time.Duration) {
	st := m.sc.At(elapsed)
	values := []struct {
		code  telemetry.Code
		value float64
		unit  string
	}{
		{telemetry.MDC_ECG_HEART_RATE, st.HR, telemetry.UnitPerMinute},
		{telemetry.MDC_PULS_OXIM_SAT_O2, st.SpO2, telemetry.UnitPercent},
		{telemetry.MDC_PULS_OXIM_PULS_RATE, st.PR, telemetry.UnitPerMinute},
		{telemetry.MDC_TTHOR_RESP_RATE, st.RR, telemetry.UnitPerMinute},
		{telemetry.MDC_AWAY_CO2_ET, st.EtCO2, telemetry.UnitMMHg},
		{telemetry.MDC_TEMP_BODY, st.Temp, telemetry.UnitCelsius},
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range values {
		m.bus.Publish("monitor0", &telemetry.Numeric{Code: v.code, Value: v.value, Unit: v.unit, ReceiveTime: now})
		m.numeric[v.code] = v.value
	}
	if p, ok := m.sc.LastNIBP(elapsed); ok {
		nibp := telemetry.NIBP{Sys: p.Sys, Dia: p.Dia, Mean: p.Mean, Unit: telemetry.UnitMMHg, Measured: m.t0.Add(p.At), ReceiveTime: now}
		for _, n := range nibp.Numerics() {
			m.bus.Publish("monitor0", n)
			m.numeric[n.Code] = n.Value
		}
	}
}

// alarm raises or clears an alarm about code, as the monitor would.
func (m *simMonitor) alarm(code telemetry.Code, p telemetry.Priority, text string, on bool) {
	now := time.Now()
	m.bus.Publish("monitor0", &telemetry.Alarm{Priority: p, Text: text, Code: code, On: on, MonitorTime: now, ReceiveTime: now})
}

// last returns the value last published for code, and whether there was one.
func (m *simMonitor) last(code telemetry.Code) (float64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.numeric[code]
	return v, ok
}
