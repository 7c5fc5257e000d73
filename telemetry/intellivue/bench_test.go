//go:build bench

package intellivue

import (
	"context"
	"sync"
	"testing"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/telemetrytest"
)

// TestBenchLatency measures serial frame in → wave block out of the driver through a
// real pty at 115200 baud, for a 12-lead ECG at 500 Hz plus pleth, ABP and respiration.
// Run: go test -tags bench -run 'TestBench' -v ./telemetry/intellivue
func TestBenchLatency(t *testing.T) {
	var lat telemetrytest.Latency
	sim := NewSimulator(SimConfig{Logger: quietLogger(), Leads: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
		Sent: func(e telemetry.Event) {
			if w, ok := e.(*telemetry.Wave); ok {
				lat.Sent(w.Code, time.Now())
			}
		}})
	drv := New(Config{Logger: quietLogger()})
	c := telemetrytest.PlugCable(t, drv.Serial())
	sink := telemetry.SinkFunc(func(e telemetry.Event) {
		if w, ok := e.(*telemetry.Wave); ok {
			lat.Received(w.Code, 1, time.Now())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sim.Run(ctx, c.Monitor) }()
	go func() { defer wg.Done(); drv.Run(ctx, c.Box, sink) }()
	wg.Wait()
	p := telemetrytest.Summarize(lat.Delays())
	if p.N < 100 {
		t.Fatalf("only %d blocks", p.N)
	}
	t.Logf("intellivue: %d wave blocks, latency frame-written→block-emitted %v", p.N, p)
}

// TestBenchCPU decodes 60 s of 12-lead ECG at 500 Hz plus pleth, ABP and respiration
// (6 000 + 375 samples/s) as fast as it goes and reports the CPU per real-time second.
func TestBenchCPU(t *testing.T) {
	sim := NewSimulator(SimConfig{Logger: quietLogger(), Leads: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}})
	sc := &simConn{s: sim, rel0: 0x100000}
	start := time.Unix(1700000000, 0)
	sc.associate(start)
	sc.assoc, sc.waitRes = true, false
	p := &extPoll{number: 1, class: ClassRTSA, end: start.Add(time.Hour)}
	var wire []byte
	const seconds = 60
	samples := 0
	for at := start; at.Before(start.Add(seconds * time.Second)); at = at.Add(waveResultEvery) {
		wire = sc.result(p, at, false, wire)
	}
	for _, w := range sc.waves {
		samples += int(float64(seconds) / w.period.Duration().Seconds())
	}
	var n int
	conn := newConn(New(Config{Logger: quietLogger()}), discardPort{}, telemetry.SinkFunc(func(e telemetry.Event) {
		if w, ok := e.(*telemetry.Wave); ok {
			n += len(w.Samples)
		}
	}))
	conn.phase = phaseConnected
	c0, w0 := telemetrytest.CPUTime(), time.Now()
	for i := 0; i < len(wire); i += 512 { // a USB-serial adapter delivers ~512-byte reads
		conn.feed(wire[i:min(i+512, len(wire))], time.Now())
	}
	cpu, wall := telemetrytest.CPUTime()-c0, time.Since(w0)
	if n < samples*9/10 {
		t.Fatalf("decoded %d of %d samples", n, samples)
	}
	perSec := float64(samples) / seconds
	frac := cpu.Seconds() / seconds
	t.Logf("intellivue: %d bytes, %d samples (%.0f/s) decoded in %v CPU (%v wall): %.3f %% of one core, %.4f %% per 1000 samples/s",
		len(wire), n, perSec, cpu, wall, 100*frac, 100*frac/(perSec/1000))
}
