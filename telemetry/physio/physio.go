// Package physio generates synthetic but physiologically shaped patient signals for the
// monitor simulators: a 12-lead sinus ECG from a PQRST model with a ventricular
// tachycardia episode on demand, a plethysmogram following the heart beats, respiration
// and capnogram, SpO2 desaturation and NIBP cuff cycles. Everything is a deterministic
// function of the scenario and elapsed time, so tests can recompute what a simulator sent.
package physio

import (
	"math"
	"time"
)

// Scenario describes how the patient evolves over the simulation's elapsed time.
type Scenario struct {
	HR    float64 // sinus heart rate, beats/min (default 78)
	SpO2  float64 // baseline saturation, % (default 97)
	RR    float64 // respiration rate, breaths/min (default 16)
	EtCO2 float64 // end-tidal CO2, mmHg (default 38)
	Temp  float64 // °C (default 36.8)

	// VTAt starts a ventricular tachycardia episode (rate VTRate, default 180) lasting
	// VTFor; zero VTFor means none.
	VTAt, VTFor time.Duration
	VTRate      float64

	// DesatAt starts a desaturation to DesatTo % over DesatOver, which then holds.
	DesatAt, DesatOver time.Duration
	DesatTo            float64

	// NIBPEvery is the cuff cycle interval (default 1 min); a cycle takes 30 s and its
	// result is reported when it ends.
	NIBPEvery time.Duration
	// NIBPSys/Dia are the baseline pressures (default 124/78 mmHg).
	NIBPSys, NIBPDia float64
}

func def(v, d float64) float64 {
	if v == 0 {
		return d
	}
	return v
}

// State is the patient's numerics at one moment.
type State struct {
	HR, PR, SpO2, RR, EtCO2, FiCO2, Temp, PI float64
	VT                                       bool
}

// At returns the numerics at elapsed time t.
func (s *Scenario) At(t time.Duration) State {
	st := State{
		HR:    def(s.HR, 78),
		SpO2:  def(s.SpO2, 97),
		RR:    def(s.RR, 16),
		EtCO2: def(s.EtCO2, 38),
		Temp:  def(s.Temp, 36.8),
		PI:    3.2,
	}
	if s.InVT(t) {
		st.VT = true
		st.HR = def(s.VTRate, 180)
		st.PI = 0.4 // poor perfusion: VT at 180/min barely fills the ventricles
	}
	if s.DesatTo > 0 && t >= s.DesatAt {
		f := 1.0
		if s.DesatOver > 0 {
			f = math.Min(1, float64(t-s.DesatAt)/float64(s.DesatOver))
		}
		st.SpO2 += (s.DesatTo - st.SpO2) * f
	}
	st.SpO2 = math.Round(st.SpO2)
	st.PR = st.HR
	return st
}

// InVT reports whether t falls in the VT episode.
func (s *Scenario) InVT(t time.Duration) bool {
	return s.VTFor > 0 && t >= s.VTAt && t < s.VTAt+s.VTFor
}

// NIBP is one cuff measurement.
type NIBP struct {
	Sys, Dia, Mean float64
	// At is the elapsed time the measurement finished.
	At time.Duration
}

// LastNIBP returns the latest cuff result finished at or before t (ok false before the
// first cycle ends). Cycles start at 0, NIBPEvery, 2·NIBPEvery… and last 30 s (or a
// third of the interval when that is shorter).
func (s *Scenario) LastNIBP(t time.Duration) (NIBP, bool) {
	every := s.NIBPEvery
	if every <= 0 {
		every = time.Minute
	}
	dur := min(30*time.Second, every/3)
	if t < dur {
		return NIBP{}, false
	}
	k := (t - dur) / every
	end := k*every + dur
	sys, dia := def(s.NIBPSys, 124), def(s.NIBPDia, 78)
	// A slow, deterministic variation from cycle to cycle.
	sys += 6 * math.Sin(float64(k)*1.3)
	dia += 4 * math.Sin(float64(k)*1.3+0.5)
	if s.InVT(end) {
		sys, dia = 82, 50 // VT drops the pressure
	}
	sys, dia = math.Round(sys), math.Round(dia)
	return NIBP{Sys: sys, Dia: dia, Mean: math.Round(dia + (sys-dia)/3), At: end}, true
}

// beatClock integrates the heart rate into a beat phase so that rate changes (VT onset)
// do not jump the waveform.
type beatClock struct {
	phase float64 // beats, fractional part is the position in the current beat
}

func (b *beatClock) step(hr, dt float64) float64 {
	b.phase += hr / 60 * dt
	return b.phase - math.Floor(b.phase)
}

func gauss(x, mu, sigma float64) float64 {
	d := (x - mu) / sigma
	return math.Exp(-0.5 * d * d)
}
