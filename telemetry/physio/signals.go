package physio

import (
	"math"
	"time"
)

// ECG generates 12-lead ECG samples in mV at a fixed rate, lead order I, II, III, aVR,
// aVL, aVF, V1..V6 (telemetry.ECG12).
type ECG struct {
	sc    *Scenario
	rate  float64
	n     int64
	beats beatClock
}

// NewECG returns a generator at rate samples/s following sc.
func NewECG(sc *Scenario, rate float64) *ECG { return &ECG{sc: sc, rate: rate} }

// chest gives each precordial lead its R and S scale: rS in V1, growing R towards V5.
var chest = [6][2]float64{{0.25, 1.4}, {0.5, 1.3}, {0.9, 0.9}, {1.3, 0.6}, {1.2, 0.3}, {1.0, 0.2}}

// Next returns the next sample of every lead.
func (e *ECG) Next() [12]float32 {
	t := time.Duration(float64(e.n) / e.rate * float64(time.Second))
	e.n++
	st := e.sc.At(t)
	ph := e.beats.step(st.HR, 1/e.rate)
	var p, q, r, s, tw float64
	if st.VT {
		// Wide, bizarre complexes without P waves.
		r = 1.6*gauss(ph, 0.35, 0.09) - 0.9*gauss(ph, 0.65, 0.1)
	} else {
		p = 0.15 * gauss(ph, 0.18, 0.025)
		q = -0.10 * gauss(ph, 0.375, 0.008)
		r = 1.20 * gauss(ph, 0.40, 0.010)
		s = -0.25 * gauss(ph, 0.425, 0.010)
		tw = 0.30 * gauss(ph, 0.68, 0.045)
	}
	wander := 0.03 * math.Sin(2*math.Pi*st.RR/60*float64(t)/float64(time.Second))
	// Frontal-plane projection with a QRS axis of 60°: lead I sees cos(60°), II sees 1.
	axis := 60.0 * math.Pi / 180
	beat := p + q + r + s + tw
	i := beat*math.Cos(axis) + wander
	ii := beat*math.Cos(axis-math.Pi/3) + wander
	var out [12]float32
	out[0] = float32(i)
	out[1] = float32(ii)
	out[2] = float32(ii - i)        // III = II − I (Einthoven)
	out[3] = float32(-(i + ii) / 2) // aVR
	out[4] = float32(i - ii/2)      // aVL
	out[5] = float32(ii - i/2)      // aVF
	for k, c := range chest {
		out[6+k] = float32(p + q + c[0]*r + c[1]*s + tw + wander)
	}
	return out
}

// Pleth generates a plethysmogram in arbitrary units 0..1, following the heart beat
// (systolic upstroke, dicrotic notch), its amplitude falling with perfusion.
type Pleth struct {
	sc    *Scenario
	rate  float64
	n     int64
	beats beatClock
}

// NewPleth returns a generator at rate samples/s.
func NewPleth(sc *Scenario, rate float64) *Pleth { return &Pleth{sc: sc, rate: rate} }

// Next returns the next sample.
func (p *Pleth) Next() float64 {
	t := time.Duration(float64(p.n) / p.rate * float64(time.Second))
	p.n++
	st := p.sc.At(t)
	ph := p.beats.step(st.HR, 1/p.rate)
	amp := math.Min(1, st.PI/3.2)
	v := 0.8*gauss(ph, 0.55, 0.09) + 0.3*gauss(ph, 0.80, 0.07)
	return 0.1 + 0.85*amp*v
}

// Resp generates the chest impedance respiration wave in Ohm around 0.
type Resp struct {
	sc   *Scenario
	rate float64
	n    int64
	ph   float64
}

// NewResp returns a generator at rate samples/s.
func NewResp(sc *Scenario, rate float64) *Resp { return &Resp{sc: sc, rate: rate} }

// Next returns the next sample.
func (r *Resp) Next() float64 {
	t := time.Duration(float64(r.n) / r.rate * float64(time.Second))
	r.n++
	st := r.sc.At(t)
	r.ph += st.RR / 60 / r.rate
	return 0.8 * math.Sin(2*math.Pi*r.ph)
}

// CO2 generates a capnogram in mmHg: a plateau at EtCO2 during expiration, near zero
// during inspiration.
type CO2 struct {
	sc   *Scenario
	rate float64
	n    int64
	ph   float64
}

// NewCO2 returns a generator at rate samples/s.
func NewCO2(sc *Scenario, rate float64) *CO2 { return &CO2{sc: sc, rate: rate} }

// Next returns the next sample.
func (c *CO2) Next() float64 {
	t := time.Duration(float64(c.n) / c.rate * float64(time.Second))
	c.n++
	st := c.sc.At(t)
	c.ph += st.RR / 60 / c.rate
	x := c.ph - math.Floor(c.ph)
	switch {
	case x < 0.4: // inspiration
		return 0
	case x < 0.5: // expiratory upstroke
		return st.EtCO2 * (x - 0.4) / 0.1
	case x < 0.9: // alveolar plateau rising slightly
		return st.EtCO2 * (0.95 + 0.05*(x-0.5)/0.4)
	default: // inspiratory downstroke
		return st.EtCO2 * (1 - (x-0.9)/0.1)
	}
}
