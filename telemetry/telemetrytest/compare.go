package telemetrytest

import (
	"fmt"
	"math"
	"testing"

	"lifeline/telemetry"
)

// NumericKey is what Compare matches a sent numeric against a received one by.
type NumericKey struct {
	Code     telemetry.Code
	Value    float64
	Unit     string
	At       int64 // monitor time, in the resolution the protocol carries
	Measured int64 // measurement time, likewise; 0 where the protocol does not carry it
	Invalid  bool
}

// Compare checks that a driver produced exactly the numerics, wave samples and raised
// alarms that a simulator sent intact (sent: what the simulator's Sent hook saw), with
// the right code, unit and value. key reduces a numeric to what the protocol carries
// faithfully, such as its time stamps at the resolution of the wire. Compare returns
// the number of samples received per wave channel.
func Compare(t testing.TB, sent, got []telemetry.Event, key func(*telemetry.Numeric) NumericKey) (waves map[telemetry.Code]int) {
	t.Helper()
	count := func(evs []telemetry.Event) (map[NumericKey]int, map[telemetry.Code][]float32, map[telemetry.Code]string, map[string]bool) {
		nums := map[NumericKey]int{}
		samples := map[telemetry.Code][]float32{}
		units := map[telemetry.Code]string{}
		alarms := map[string]bool{}
		for _, e := range evs {
			switch v := e.(type) {
			case *telemetry.Numeric:
				nums[key(v)]++
			case *telemetry.Wave:
				if v.Rate <= 0 {
					t.Errorf("wave %s without rate", v.Code)
				}
				samples[v.Code] = append(samples[v.Code], v.Samples...)
				if u, ok := units[v.Code]; ok && u != v.Unit {
					t.Errorf("wave %s changes unit %s -> %s", v.Code, u, v.Unit)
				}
				units[v.Code] = v.Unit
			case *telemetry.Alarm:
				if v.On {
					alarms[fmt.Sprintf("%s/%s", v.Text, v.Priority)] = true
				}
			}
		}
		return nums, samples, units, alarms
	}
	sn, ss, su, sa := count(sent)
	gn, gs, gu, ga := count(got)
	if len(sn) == 0 || len(ss) == 0 {
		t.Fatalf("the simulator sent %d numerics and %d wave channels: nothing to compare", len(sn), len(ss))
	}
	for k, n := range sn {
		if gn[k] != n {
			t.Errorf("numeric %s=%v %s at %d: sent %d times, received %d", k.Code, k.Value, k.Unit, k.At, n, gn[k])
		}
	}
	for k, n := range gn {
		if sn[k] == 0 {
			t.Errorf("numeric %s=%v %s at %d received %d times but never sent", k.Code, k.Value, k.Unit, k.At, n)
		}
	}
	waves = map[telemetry.Code]int{}
	for code, s := range ss {
		g := gs[code]
		if su[code] != gu[code] {
			t.Errorf("wave %s: unit %q, sent %q", code, gu[code], su[code])
		}
		if len(g) != len(s) {
			t.Errorf("wave %s: received %d samples, sent %d", code, len(g), len(s))
			continue
		}
		for i := range s {
			if g[i] != s[i] && !(math.IsNaN(float64(g[i])) && math.IsNaN(float64(s[i]))) {
				t.Errorf("wave %s sample %d: %v, sent %v", code, i, g[i], s[i])
				break
			}
		}
		waves[code] = len(g)
	}
	for code := range gs {
		if _, ok := ss[code]; !ok {
			t.Errorf("wave %s received but never sent", code)
		}
	}
	for a := range sa {
		if !ga[a] {
			t.Errorf("alarm %s sent but not raised", a)
		}
	}
	return waves
}

// Delivered reports whether got holds at least everything in sent, counted as Compare
// counts it: each numeric as often, as many samples per wave channel, every raised
// alarm. It is the condition to wait for before comparing, so that a test waits as long
// as the line needs and no longer.
func Delivered(sent, got []telemetry.Event, key func(*telemetry.Numeric) NumericKey) bool {
	type tally struct {
		nums    map[NumericKey]int
		samples map[telemetry.Code]int
		alarms  map[string]bool
	}
	count := func(evs []telemetry.Event) tally {
		c := tally{nums: map[NumericKey]int{}, samples: map[telemetry.Code]int{}, alarms: map[string]bool{}}
		for _, e := range evs {
			switch v := e.(type) {
			case *telemetry.Numeric:
				c.nums[key(v)]++
			case *telemetry.Wave:
				c.samples[v.Code] += len(v.Samples)
			case *telemetry.Alarm:
				if v.On {
					c.alarms[fmt.Sprintf("%s/%s", v.Text, v.Priority)] = true
				}
			}
		}
		return c
	}
	s, g := count(sent), count(got)
	for k, n := range s.nums {
		if g.nums[k] < n {
			return false
		}
	}
	for code, n := range s.samples {
		if g.samples[code] < n {
			return false
		}
	}
	for a := range s.alarms {
		if !g.alarms[a] {
			return false
		}
	}
	return true
}
