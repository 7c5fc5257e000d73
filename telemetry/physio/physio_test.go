package physio

import (
	"math"
	"testing"
	"time"
)

func TestECGBeatsAtTheScenarioRate(t *testing.T) {
	sc := &Scenario{HR: 60, VTAt: 10 * time.Second, VTFor: 5 * time.Second}
	e := NewECG(sc, 500)
	beats := func(seconds int) int {
		n, above := 0, false
		for i := 0; i < seconds*500; i++ {
			v := e.Next()[1]
			if v > 0.6 && !above {
				n++
			}
			above = v > 0.6
		}
		return n
	}
	if n := beats(10); n < 9 || n > 11 {
		t.Errorf("sinus 60/min: %d R waves in 10 s", n)
	}
	if n := beats(5); n < 13 || n > 17 {
		t.Errorf("VT 180/min: %d complexes in 5 s", n)
	}
	// Einthoven's law holds sample by sample.
	s := e.Next()
	if d := math.Abs(float64(s[1] - s[0] - s[2])); d > 1e-6 {
		t.Errorf("II-I-III = %g", d)
	}
}

func TestDesaturationAndNIBP(t *testing.T) {
	sc := &Scenario{DesatAt: 10 * time.Second, DesatOver: 10 * time.Second, DesatTo: 84, NIBPEvery: 30 * time.Second}
	if v := sc.At(5 * time.Second).SpO2; v != 97 {
		t.Errorf("before desat %v", v)
	}
	if v := sc.At(15 * time.Second).SpO2; v != 91 {
		t.Errorf("half way %v", v)
	}
	if v := sc.At(time.Minute).SpO2; v != 84 {
		t.Errorf("after %v", v)
	}
	if _, ok := sc.LastNIBP(5 * time.Second); ok {
		t.Error("NIBP before the first cycle ended")
	}
	a, ok := sc.LastNIBP(45 * time.Second)
	if !ok || a.At != 40*time.Second || a.Sys <= a.Mean || a.Mean <= a.Dia {
		t.Errorf("NIBP %+v %v", a, ok)
	}
}
