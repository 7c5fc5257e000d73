//go:build bench

package nonin_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/hardware/serialport"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/monitor"
	"lifeline/telemetry/nonin"
	"lifeline/telemetry/telemetrytest"
)

// TestBenchNonin measures frame written on the oximeter's end of a socat cable → pleth
// sample on the bus, through the monitor reader at 9600 8N1, and the process CPU.
// Run: go test -tags bench -run TestBench -v ./telemetry/nonin
func TestBenchNonin(t *testing.T) {
	const benchFor = 10 * time.Second
	cable := peers.PlugCable(t)
	bus := telemetry.NewBus(nil)
	r, err := monitor.New(monitor.Config{Port: cable.BoxEnd, Protocol: "nonin", Bus: bus, Drivers: []telemetry.Driver{nonin.New(nonin.Config{})}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx, nil)
	// One frame carries one pleth sample: the n-th sample on the bus is the n-th frame.
	const pleth = telemetry.MDC_PULS_OXIM_PLETH
	var lat telemetrytest.Latency
	var received atomic.Int64
	sub := bus.Subscribe("bench", 1<<14)
	go func() {
		for m := range sub.C() {
			now := time.Now()
			if w, ok := m.Event.(*telemetry.Wave); ok {
				lat.Received(pleth, len(w.Samples), now)
				received.Add(int64(len(w.Samples)))
			}
		}
	}()
	wait.For(t, 10*time.Second, "the reader to open the pty", func() bool { return r.Status().State == monitor.StateConnected })
	// The reader idling (read timeouts, silence watchdog) with nothing on the line,
	// measured over a fixed window on purpose.
	i0 := telemetrytest.CPUTime()
	<-time.After(2 * time.Second)
	idle := (telemetrytest.CPUTime() - i0) / 2
	sctx, scancel := context.WithTimeout(ctx, benchFor)
	defer scancel()
	c0 := telemetrytest.CPUTime()
	oximeter, err := serialport.Open(cable.DeviceEnd, telemetrytest.ModeOf(nonin.Protocol.NewDriver(telemetry.DriverConfig{}).Serial()))
	if err != nil {
		t.Fatal(err)
	}
	defer oximeter.Close()
	nonin.NewSimulator(nonin.SimConfig{Sent: func(e telemetry.Event) {
		if _, ok := e.(*telemetry.Wave); ok {
			lat.Sent(pleth, time.Now()) // one pleth wave per frame sent
		}
	}}).Run(sctx, oximeter)
	if wait.Until(10*time.Second, lat.CaughtUp) != nil {
		t.Error("frames sent never reached the bus")
	}
	cpu := telemetrytest.CPUTime() - c0
	cancel()
	sub.Unsubscribe()
	p := telemetrytest.Summarize(lat.Delays())
	if p.N == 0 {
		t.Fatal("nothing measured")
	}
	rate := float64(received.Load()) / benchFor.Seconds()
	t.Logf("nonin (socat cable 9600 8N1, pleth 75 Hz): %d blocks, %.0f samples/s; frame in → sample on bus %v", p.N, rate, p)
	t.Logf("nonin: CPU idle reader %.2f%% of one core", 100*idle.Seconds())
	t.Logf("nonin: CPU (simulator + reader) %.2f%% of one core = %.3f%% per 1,000 samples/s", 100*cpu.Seconds()/benchFor.Seconds(), 100*cpu.Seconds()/benchFor.Seconds()/(rate/1000))
}
