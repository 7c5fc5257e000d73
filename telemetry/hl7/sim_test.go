package hl7

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/physio"
	"lifeline/telemetry/telemetrytest"
)

// sent collects what the simulator sent intact, per kind; the simulator adds to it
// while the test looks.
type sent struct {
	mu       sync.Mutex
	samples  map[telemetry.Code][]float32
	numerics []*telemetry.Numeric
	alarms   []*telemetry.Alarm
}

func (s *sent) add(e telemetry.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch v := e.(type) {
	case *telemetry.Wave:
		s.samples[v.Code] = append(s.samples[v.Code], v.Samples...)
	case *telemetry.Numeric:
		s.numerics = append(s.numerics, v)
	case *telemetry.Alarm:
		s.alarms = append(s.alarms, v)
	}
}

// counts returns how many samples of code and how many alarms were sent so far.
func (s *sent) counts(code telemetry.Code) (samples, alarms int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.samples[code]), len(s.alarms)
}

// arrived reports whether the sink holds at least as many samples, numerics and alarms
// as were sent intact; check then compares them one by one.
func (s *sent) arrived(sink *telemetrytest.Sink) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for code, want := range s.samples {
		if len(sink.Samples(code)) < len(want) {
			return false
		}
	}
	var numerics, alarms int
	for _, e := range sink.Events() {
		switch e.(type) {
		case *telemetry.Numeric:
			numerics++
		case *telemetry.Alarm:
			alarms++
		}
	}
	return numerics >= len(s.numerics) && alarms >= len(s.alarms)
}

// check compares what the driver delivered with what the simulator sent intact: every
// sample of every channel in order, every numeric with code, unit, value and monitor time.
func (s *sent) check(t *testing.T, sink *telemetrytest.Sink) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for code, want := range s.samples {
		got := sink.Samples(code)
		if len(got) != len(want) {
			t.Fatalf("%s: received %d samples, sent %d", code.Name(), len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s sample %d = %v, want %v", code.Name(), i, got[i], want[i])
			}
		}
		for _, w := range sink.Waves(code) {
			q, _ := telemetry.Lookup(code)
			if w.Unit != q.Unit || w.Rate <= 0 {
				t.Fatalf("%s: unit %q rate %v", code.Name(), w.Unit, w.Rate)
			}
		}
	}
	var got []*telemetry.Numeric
	for _, e := range sink.Events() {
		if n, ok := e.(*telemetry.Numeric); ok {
			got = append(got, n)
		}
	}
	if len(got) != len(s.numerics) {
		t.Fatalf("received %d numerics, sent %d", len(got), len(s.numerics))
	}
	for i, w := range s.numerics {
		g := got[i]
		if g.Code != w.Code || g.Value != w.Value || g.Unit != w.Unit || !g.MonitorTime.Equal(w.MonitorTime) || !g.Measured.Equal(w.Measured) {
			t.Fatalf("numeric %d: got %s %v %s @%v, sent %s %v %s @%v", i, g.Code.Name(), g.Value, g.Unit, g.MonitorTime, w.Code.Name(), w.Value, w.Unit, w.MonitorTime)
		}
	}
	var alarms int
	for _, e := range sink.Events() {
		if a, ok := e.(*telemetry.Alarm); ok {
			w := s.alarms[alarms]
			if a.Text != w.Text || a.On != w.On || a.Priority != w.Priority {
				t.Fatalf("alarm %d: %+v, sent %+v", alarms, a, w)
			}
			alarms++
		}
	}
	if alarms != len(s.alarms) {
		t.Fatalf("received %d alarms, sent %d", alarms, len(s.alarms))
	}
}

// TestSimulatorThroughPty runs the HL7 simulator and driver on the two ends of a socat
// cable opened through go.bug.st/serial at 115200 8N1, with noise, dropped and garbled
// messages and CR LF segment separators.
func TestSimulatorThroughPty(t *testing.T) {
	drv := New(Config{})
	rec := &sent{samples: map[telemetry.Code][]float32{}}
	sim := NewSimulator(SimConfig{
		Scenario:   &physio.Scenario{VTAt: 800 * time.Millisecond, VTFor: 800 * time.Millisecond, NIBPEvery: 1500 * time.Millisecond},
		Leads:      []telemetry.Code{telemetry.MDC_ECG_ELEC_POTL_II, telemetry.MDC_ECG_ELEC_POTL_V5},
		CRLF:       true,
		BlockEvery: 250 * time.Millisecond,
		Faults:     telemetry.LineFaults{Noise: 0.3, Drop: 0.1, Corrupt: 0.1, Seed: 3},
		Sent:       rec.add,
	})
	c := telemetrytest.PlugCable(t, drv.Serial())
	s := telemetrytest.Start(c, sim, drv)
	// Run until the VT episode (0.8 s to 1.6 s) is over: 2 s of ECG at 250 Hz sent
	// intact. Its alarm messages may have been lost on the faulty line like any other;
	// every one sent intact must arrive (check). TestSimulatorOverTCP, on a clean line,
	// checks that the episode raises and clears the alarm.
	wait.For(t, 30*time.Second, "the simulator to send 2 s of ECG", func() bool {
		ecg, _ := rec.counts(telemetry.MDC_ECG_ELEC_POTL_II)
		return ecg >= 500
	})
	s.Finish(t, func() bool { return rec.arrived(s.Got) })
	rec.check(t, s.Got)
	_, alarms := rec.counts(0)
	t.Logf("%d alarm messages went out intact", alarms)
	ok, failed, sentOK := sim.Acks()
	if failed != 0 || ok < sentOK-2 { // the last ACKs may be in flight at the stop
		t.Errorf("ACKs: %d AA, %d errors, for %d messages sent intact", ok, failed, sentOK)
	}
	if _, skipped := s.Got.Counts(); skipped == 0 {
		t.Error("noise and garbled messages not counted")
	}
}

// TestSimulatorOverTCP has the box listen for the monitor's MLLP connection, the common
// deployment, with 12 leads at 500 Hz and a VT episode that raises and clears the alarm.
func TestSimulatorOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rec := &sent{samples: map[telemetry.Code][]float32{}}
	sim := NewSimulator(SimConfig{Leads: telemetry.ECG12, ECGRate: 500, Sent: rec.add, BlockEvery: 200 * time.Millisecond,
		Scenario: &physio.Scenario{VTAt: 200 * time.Millisecond, VTFor: 700 * time.Millisecond}, NumericsEvery: 250 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	simDone := make(chan error, 1)
	go func() {
		c, err := Dial(ctx, ln.Addr().String())
		if err != nil {
			simDone <- err
			return
		}
		defer c.Close()
		simDone <- sim.Run(ctx, ConnPort(c))
	}()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	var sink telemetrytest.Sink
	drvCtx, drvCancel := context.WithCancel(context.Background())
	defer drvCancel()
	drvDone := make(chan error, 1)
	go func() { drvDone <- New(Config{}).Run(drvCtx, ConnPort(conn), &sink) }()
	wait.For(t, 20*time.Second, "the simulator to send 700 samples of V6 and the VT alarm raised and cleared", func() bool {
		v6, alarms := rec.counts(telemetry.MDC_ECG_ELEC_POTL_V6)
		return v6 >= 700 && alarms >= 2
	})
	cancel()
	<-simDone
	wait.For(t, 15*time.Second, "the driver to receive everything sent", func() bool { return rec.arrived(&sink) })
	drvCancel()
	conn.Close()
	<-drvDone
	rec.check(t, &sink)
	if _, alarms := rec.counts(0); alarms != 2 || !rec.alarms[0].On || rec.alarms[1].On {
		t.Errorf("alarms sent %d, want the VT alarm raised then cleared", alarms)
	}
	for _, lead := range telemetry.ECG12 {
		if n, _ := rec.counts(lead); n < 700 {
			t.Errorf("%s: only %d samples sent, want the twelve leads in step", lead.Name(), n)
		}
	}
}
