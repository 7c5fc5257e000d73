//go:build bench

package hl7_test

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/monitor"
	"lifeline/telemetry/telemetrytest"
)

const benchFor = 10 * time.Second

// simulate runs the 12-lead + pleth simulator into conn for benchFor.
func simulate(ctx context.Context, conn net.Conn, sent func(telemetry.Event)) *hl7.Simulator {
	sim := hl7.NewSimulator(hl7.SimConfig{Leads: telemetry.ECG12, ECGRate: 500, PlethRate: 125, BlockEvery: 100 * time.Millisecond, Sent: sent})
	sim.Run(ctx, hl7.ConnPort(conn))
	return sim
}

// TestBenchHL7 measures message in → sample on the bus, through the monitor reader
// listening for MLLP on loopback TCP, for a 12-lead ECG at 500 Hz plus pleth at 125 Hz,
// and the reader's CPU (the whole process minus a run of the simulator alone).
// Run: go test -tags bench -run TestBench -v ./telemetry/hl7
func TestBenchHL7(t *testing.T) {
	// Baseline: the simulator alone, into a connection drained without decoding.
	base := func() time.Duration {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				io.Copy(io.Discard, c)
			}
		}()
		c, _ := net.Dial("tcp", ln.Addr().String())
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), benchFor)
		defer cancel()
		c0 := telemetrytest.CPUTime()
		simulate(ctx, c, nil)
		return telemetrytest.CPUTime() - c0
	}()

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	bus := telemetry.NewBus(nil)
	r, err := monitor.New(monitor.Config{Port: "tcp://" + addr, Protocol: "hl7", Bus: bus, Drivers: []telemetry.Driver{hl7.New(hl7.Config{})}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx, nil)
	var lat telemetrytest.Latency
	var samples atomic.Int64
	sub := bus.Subscribe("bench", 1<<16)
	go func() {
		for m := range sub.C() {
			now := time.Now()
			if w, ok := m.Event.(*telemetry.Wave); ok {
				lat.Received(w.Code, 1, now)
				samples.Add(int64(len(w.Samples)))
			}
		}
	}()
	var c net.Conn
	wait.For(t, 10*time.Second, "the reader to listen", func() bool {
		c, _ = net.Dial("tcp", addr)
		return c != nil
	})
	defer c.Close()
	sctx, scancel := context.WithTimeout(ctx, benchFor)
	defer scancel()
	c0 := telemetrytest.CPUTime()
	simulate(sctx, c, func(e telemetry.Event) {
		if w, ok := e.(*telemetry.Wave); ok {
			lat.Sent(w.Code, time.Now()) // just before the bytes are written
		}
	})
	// Measure until the last block sent is on the bus.
	if wait.Until(10*time.Second, lat.CaughtUp) != nil {
		t.Error("blocks sent never reached the bus")
	}
	full := telemetrytest.CPUTime() - c0
	cancel()
	sub.Unsubscribe()
	report(t, "hl7 (MLLP/TCP, 12×500 Hz + pleth 125 Hz)", lat.Delays(), int(samples.Load()), full, base)
}

func report(t *testing.T, name string, lat []time.Duration, samples int, full, base time.Duration) {
	p := telemetrytest.Summarize(lat)
	if p.N == 0 {
		t.Fatal("no samples measured")
	}
	rate := float64(samples) / benchFor.Seconds()
	reader := full - base
	if reader < 0 {
		reader = 0
	}
	core := reader.Seconds() / benchFor.Seconds()
	t.Logf("%s: %d blocks, %.0f samples/s; frame in → sample on bus %v", name, p.N, rate, p)
	t.Logf("%s: CPU raw: process %v, simulator alone %v over %v", name, full, base, benchFor)
	t.Logf("%s: CPU reader %.2f%% of one core (process %.2f%%, simulator alone %.2f%%) = %.3f%% per 1,000 samples/s",
		name, 100*core, 100*full.Seconds()/benchFor.Seconds(), 100*base.Seconds()/benchFor.Seconds(), 100*core/(rate/1000))
}
