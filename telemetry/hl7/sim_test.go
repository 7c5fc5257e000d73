package hl7

import (
	"context"
	"net"
	"testing"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/physio"
	"lifeline/telemetry/telemetrytest"
)

// sent collects what the simulator sent intact, per kind.
type sent struct {
	samples  map[telemetry.Code][]float32
	numerics []*telemetry.Numeric
	alarms   []*telemetry.Alarm
}

func (s *sent) add(evs []telemetry.Event) {
	for _, e := range evs {
		switch v := e.(type) {
		case *telemetry.Wave:
			s.samples[v.Code] = append(s.samples[v.Code], v.Samples...)
		case *telemetry.Numeric:
			s.numerics = append(s.numerics, v)
		case *telemetry.Alarm:
			s.alarms = append(s.alarms, v)
		}
	}
}

// arrived reports whether the sink holds at least as many samples, numerics and alarms
// as were sent intact; check then compares them one by one.
func (s *sent) arrived(sink *telemetrytest.Sink) bool {
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

// TestSimulatorThroughPty runs the HL7 simulator and driver on the two ends of a pty, the
// driver's end opened through go.bug.st/serial at 115200 8N1, with noise, dropped and
// garbled messages and CR LF segment separators.
func TestSimulatorThroughPty(t *testing.T) {
	drv := New(nil)
	port, far := telemetrytest.PtyPair(t, drv.Serial())
	rec := &sent{samples: map[telemetry.Code][]float32{}}
	sim := &Simulator{
		Scenario: &physio.Scenario{VTAt: 1500 * time.Millisecond, VTFor: 1500 * time.Millisecond, NIBPEvery: 3 * time.Second},
		Leads:    []telemetry.Code{telemetry.MDC_ECG_ELEC_POTL_II, telemetry.MDC_ECG_ELEC_POTL_V5},
		CRLF:     true, Seed: 3,
		BlockEvery: 250 * time.Millisecond,
		Faults:     SimFaults{Noise: 0.3, Drop: 0.1, Garble: 0.1},
		OnSent:     rec.add,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The driver gets its own context so that it keeps reading what the simulator
	// wrote before it stopped; on a loaded machine that tail can take a while.
	drvCtx, drvCancel := context.WithCancel(context.Background())
	defer drvCancel()
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(ctx, telemetry.DeadlinePort(far, time.Second)) }()
	var sink telemetrytest.Sink
	drvDone := make(chan error, 1)
	go func() { drvDone <- drv.Run(drvCtx, port, &sink) }()
	time.Sleep(4500 * time.Millisecond)
	cancel()
	<-simDone
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !rec.arrived(&sink); {
		time.Sleep(50 * time.Millisecond)
	}
	drvCancel()
	port.Close()
	if err := <-drvDone; err != context.Canceled {
		t.Fatalf("driver: %v", err)
	}
	rec.check(t, &sink)
	if len(rec.samples[telemetry.MDC_ECG_ELEC_POTL_II]) < 500 || len(rec.alarms) != 2 {
		t.Fatalf("simulator sent %d ECG samples and %d alarms", len(rec.samples[telemetry.MDC_ECG_ELEC_POTL_II]), len(rec.alarms))
	}
	ok, failed, sentOK := sim.Acks()
	if failed != 0 || ok < sentOK-2 { // the last ACKs may be in flight at cancel
		t.Errorf("ACKs: %d AA, %d errors, for %d messages sent intact", ok, failed, sentOK)
	}
	if _, skipped := sink.Counts(); skipped == 0 {
		t.Error("noise and garbled messages not counted")
	}
}

// TestSimulatorOverTCP has the box listen for the monitor's MLLP connection, the common
// deployment, with 12 leads at 500 Hz.
func TestSimulatorOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rec := &sent{samples: map[telemetry.Code][]float32{}}
	sim := &Simulator{Leads: telemetry.ECG12, ECGRate: 500, OnSent: rec.add, Seed: 1, BlockEvery: 200 * time.Millisecond}
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
	go func() { drvDone <- New(nil).Run(drvCtx, ConnPort(conn), &sink) }()
	time.Sleep(2 * time.Second)
	cancel()
	<-simDone
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !rec.arrived(&sink); {
		time.Sleep(50 * time.Millisecond)
	}
	drvCancel()
	conn.Close()
	<-drvDone
	rec.check(t, &sink)
	if n := len(rec.samples[telemetry.MDC_ECG_ELEC_POTL_V6]); n < 700 {
		t.Fatalf("only %d V6 samples sent in 2 s at 500 Hz", n)
	}
}
