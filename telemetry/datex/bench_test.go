//go:build bench

package datex

import (
	"context"
	"sync"
	"testing"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/physio"
	"lifeline/telemetry/telemetrytest"
)

var benchWaves = []byte{WaveECG1, WaveECG2, WaveECG3, WavePleth, WaveINVP1, WaveResp, WaveCO2}

// TestBenchLatency measures serial frame in → wave block out of the driver through a
// real pty at 19200 8E1 with ECG1-3 at 300 Hz, pleth and INVP1 at 100 Hz, respiration and
// CO2 at 25 Hz. Run: go test -tags bench -run 'TestBench' -v ./telemetry/datex
func TestBenchLatency(t *testing.T) {
	var lat telemetrytest.Latency
	sim := NewSimulator(SimConfig{Logger: quietLogger(), Sent: func(e telemetry.Event) {
		if w, ok := e.(*telemetry.Wave); ok {
			lat.Sent(w.Code, time.Now())
		}
	}})
	drv := New(Config{Logger: quietLogger(), Waves: benchWaves})
	c := telemetrytest.PlugCable(t, drv.Serial())
	emit := telemetry.SinkFunc(func(e telemetry.Event) {
		if w, ok := e.(*telemetry.Wave); ok {
			lat.Received(w.Code, 1, time.Now())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sim.Run(ctx, c.Monitor) }()
	go func() { defer wg.Done(); drv.Run(ctx, c.Box, emit) }()
	wg.Wait()
	// The first second holds the subscription hand-shake; report it apart.
	d := lat.Delays()
	warm := min(len(d), 35)
	t.Logf("datex: first second max %v", telemetrytest.Summarize(d[:warm]).Max)
	p := telemetrytest.Summarize(d[warm:])
	if p.N < 100 {
		t.Fatalf("only %d blocks", p.N)
	}
	t.Logf("datex: %d wave blocks, latency frame-written→block-emitted %v", p.N, p)
}

// TestBenchCPU decodes 60 s of the same wave set as fast as it goes and reports the CPU
// per real-time second.
func TestBenchCPU(t *testing.T) {
	sim := NewSimulator(SimConfig{Logger: quietLogger(), Scenario: &physio.Scenario{}})
	st := newSimState(sim)
	start := time.Unix(1700000000, 0)
	st.start = start
	sc := sim.cfg.Scenario
	st.ecg, st.pleth = physio.NewECG(sc, 300), physio.NewPleth(sc, 100)
	st.resp, st.co2 = physio.NewResp(sc, 25), physio.NewCO2(sc, 25)
	st.waves = benchWaves
	const seconds = 60
	var wire []byte
	for at := start.Add(sim.cfg.WavePeriod); !at.After(start.Add(seconds * time.Second)); at = at.Add(sim.cfg.WavePeriod) {
		wire = st.send(wire, st.waveRecord(at))
	}
	samples := 0
	for _, w := range benchWaves {
		info, _ := LookupWave(w)
		samples += int(info.Rate * seconds)
	}
	var n int
	s := newSession(New(Config{Logger: quietLogger()}), telemetry.SinkFunc(func(e telemetry.Event) {
		if w, ok := e.(*telemetry.Wave); ok {
			n += len(w.Samples)
		}
	}))
	c0, w0 := telemetrytest.CPUTime(), time.Now()
	for i := 0; i < len(wire); i += 512 {
		s.feed(wire[i:min(i+512, len(wire))], time.Now())
	}
	cpu, wall := telemetrytest.CPUTime()-c0, time.Since(w0)
	if n != samples {
		t.Fatalf("decoded %d of %d samples", n, samples)
	}
	perSec := float64(samples) / seconds
	frac := cpu.Seconds() / seconds
	t.Logf("datex: %d bytes, %d samples (%.0f/s) decoded in %v CPU (%v wall): %.3f %% of one core, %.4f %% per 1000 samples/s",
		len(wire), n, perSec, cpu, wall, 100*frac, 100*frac/(perSec/1000))
}
