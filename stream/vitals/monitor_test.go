package vitals

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/monitor"
)

// TestARealMonitorReachesTheHubUnchanged runs the whole box-side path with a real
// driver: an HL7 PCD-01 monitor simulator connects over MLLP to the box's monitor
// reader, whose events go through the Outbox to the hub's Archive. What the hub holds
// must be what the monitor sent: every numeric with its code, value and unit, and
// lead II sample for sample.
func TestARealMonitorReachesTheHubUnchanged(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	b := startBox(t, openStore(t, "box.db"), OutboxConfig{})
	link := newLink(t, openStore(t, "hub.db"), b.out)
	link.connect()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := monitor.New(monitor.Config{Name: "monitor0", Port: "tcp://" + addr, Protocol: "hl7", Bus: b.bus})
	if err != nil {
		t.Fatal(err)
	}
	readerDone := make(chan error, 1)
	go func() { readerDone <- r.Run(ctx, nil) }()
	defer func() { cancel(); <-readerDone }()

	var mu sync.Mutex
	var numerics []*telemetry.Numeric
	var leadII []float32
	sim := hl7.NewSimulator(hl7.SimConfig{BlockEvery: 100 * time.Millisecond, Sent: func(ev telemetry.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *telemetry.Numeric:
			numerics = append(numerics, e)
		case *telemetry.Wave:
			if e.Code == telemetry.MDC_ECG_ELEC_POTL_II {
				leadII = append(leadII, e.Samples...)
			}
		}
	}})
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		var c net.Conn
		// The reader may not listen yet: dial until it does, as a monitor retries.
		wait.Until(10*time.Second, func() bool {
			c, _ = hl7.Dial(simCtx, addr)
			return c != nil || simCtx.Err() != nil
		})
		if c != nil {
			defer c.Close()
			sim.Run(simCtx, hl7.ConnPort(c))
		}
	}()
	sentEnough := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(numerics) >= 10 && len(leadII) >= 750
	}
	defer func() { stopSim(); <-simDone }()
	// The simulator keeps running: what it reported sent is written even if it was
	// reported a moment before the write.
	wait.For(t, 15*time.Second, "3 s of monitoring", sentEnough)

	mu.Lock()
	wantNumerics, wantII := len(numerics), len(leadII)
	mu.Unlock()
	if err := wait.Until(10*time.Second, func() bool {
		return countNumerics(link.history(t)) >= wantNumerics && len(hubSamples(link, telemetry.MDC_ECG_ELEC_POTL_II)) >= wantII
	}); err != nil {
		t.Fatalf("hub holds %d numerics and %d lead II samples of the %d and %d sent", countNumerics(link.history(t)),
			len(hubSamples(link, telemetry.MDC_ECG_ELEC_POTL_II)), wantNumerics, wantII)
	}
	mu.Lock()
	defer mu.Unlock()
	held := link.history(t)
	if held[0].Type != TypeDevice || held[0].State != "connected" {
		t.Fatalf("the first reliable message is %s %s; want the monitor's connection", held[0].Type, held[0].State)
	}
	checkNumerics(t, numerics, held)
	got := hubSamples(link, telemetry.MDC_ECG_ELEC_POTL_II)
	for i, v := range leadII[:min(len(leadII), len(got))] {
		if got[i] != v {
			t.Fatalf("lead II sample %d at the hub is %g, the monitor sent %g", i, got[i], v)
		}
	}
}

func countNumerics(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		if m.Type == TypeNumeric {
			n++
		}
	}
	return n
}

// checkNumerics compares, in order, the numerics the monitor sent with those the hub
// holds.
func checkNumerics(t *testing.T, sent []*telemetry.Numeric, held []Message) {
	t.Helper()
	i := 0
	for _, m := range held {
		if m.Type != TypeNumeric || i >= len(sent) {
			continue
		}
		s := sent[i]
		i++
		if m.Code != uint32(s.Code) || m.MDC != s.Code.Name() || m.Unit != s.Unit || m.Value == nil || *m.Value != s.Value || m.Source != "monitor0" {
			t.Fatalf("numeric %d at the hub %s %v %s, the monitor sent %s %v %s", i, m.MDC, m.Value, m.Unit, s.Code.Name(), s.Value, s.Unit)
		}
	}
}

// hubSamples returns the samples of code the hub received, in the order of their
// place on the time axis.
func hubSamples(l *link, code telemetry.Code) []float32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []float32
	for _, m := range l.waves {
		if m.Code == uint32(code) {
			out = append(out, m.Samples...)
		}
	}
	return out
}
