//go:build bench

package hl7_test

import (
	"context"
	"io"
	"net"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/monitor"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const benchFor = 10 * time.Second

// simulate runs the 12-lead + pleth simulator into conn for benchFor.
func simulate(ctx context.Context, conn net.Conn, onSent func([]telemetry.Event)) *hl7.Simulator {
	sim := &hl7.Simulator{Leads: telemetry.ECG12, ECGRate: 500, PlethRate: 125, BlockEvery: 100 * time.Millisecond, OnSent: onSent}
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
		c0 := cpuTime()
		simulate(ctx, c, nil)
		return cpuTime() - c0
	}()

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	bus := telemetry.NewBus(nil)
	r, err := monitor.New(monitor.Config{Port: "tcp://" + addr, Protocol: "hl7", Bus: bus, Drivers: []telemetry.Driver{hl7.New(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	var mu sync.Mutex
	sentAt := map[telemetry.Code][]time.Time{}
	var lat []time.Duration
	samples := 0
	sub := bus.Subscribe("bench", 1<<16)
	go func() {
		idx := map[telemetry.Code]int{}
		for m := range sub.C() {
			now := time.Now()
			w, ok := m.Event.(*telemetry.Wave)
			if !ok {
				continue
			}
			mu.Lock()
			i := idx[w.Code]
			idx[w.Code]++
			if i < len(sentAt[w.Code]) {
				lat = append(lat, now.Sub(sentAt[w.Code][i]))
			}
			samples += len(w.Samples)
			mu.Unlock()
		}
	}()
	var c net.Conn
	for c == nil {
		c, _ = net.Dial("tcp", addr)
		time.Sleep(10 * time.Millisecond)
	}
	defer c.Close()
	sctx, scancel := context.WithTimeout(ctx, benchFor)
	defer scancel()
	c0 := cpuTime()
	simulate(sctx, c, func(evs []telemetry.Event) {
		now := time.Now() // just before the bytes are written
		mu.Lock()
		for _, e := range evs {
			if w, ok := e.(*telemetry.Wave); ok {
				sentAt[w.Code] = append(sentAt[w.Code], now)
			}
		}
		mu.Unlock()
	})
	time.Sleep(200 * time.Millisecond)
	full := cpuTime() - c0
	cancel()
	sub.Unsubscribe()
	report(t, "hl7 (MLLP/TCP, 12×500 Hz + pleth 125 Hz)", lat, samples, full, base)
}

func report(t *testing.T, name string, lat []time.Duration, samples int, full, base time.Duration) {
	if len(lat) == 0 {
		t.Fatal("no samples measured")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	rate := float64(samples) / benchFor.Seconds()
	reader := full - base
	if reader < 0 {
		reader = 0
	}
	core := reader.Seconds() / benchFor.Seconds()
	t.Logf("%s: %d blocks, %.0f samples/s; frame in → sample on bus p50 %v p99 %v max %v", name, len(lat), rate, p(0.5), p(0.99), lat[len(lat)-1])
	t.Logf("%s: CPU raw: process %v, simulator alone %v over %v", name, full, base, benchFor)
	t.Logf("%s: CPU reader %.2f%% of one core (process %.2f%%, simulator alone %.2f%%) = %.3f%% per 1,000 samples/s",
		name, 100*core, 100*full.Seconds()/benchFor.Seconds(), 100*base.Seconds()/benchFor.Seconds(), 100*core/(rate/1000))
}
