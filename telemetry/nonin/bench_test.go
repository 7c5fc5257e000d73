//go:build bench

package nonin_test

import (
	"context"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"lifeline/telemetry"
	"lifeline/telemetry/monitor"
	"lifeline/telemetry/nonin"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestBenchNonin measures frame written on the oximeter's end of a pty → pleth sample on
// the bus, through the monitor reader at 9600 8N1, and the process CPU.
// Run: go test -tags bench -run TestBench -v ./telemetry/nonin
func TestBenchNonin(t *testing.T) {
	const benchFor = 10 * time.Second
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	bus := telemetry.NewBus(nil)
	r, err := monitor.New(monitor.Config{Port: slave.Name(), Protocol: "nonin", Bus: bus, Drivers: []telemetry.Driver{nonin.New(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	var mu sync.Mutex
	var sentAt []time.Time
	var lat []time.Duration
	received := 0
	sub := bus.Subscribe("bench", 1<<14)
	go func() {
		for m := range sub.C() {
			now := time.Now()
			w, ok := m.Event.(*telemetry.Wave)
			if !ok {
				continue
			}
			mu.Lock()
			received += len(w.Samples)
			if received-1 < len(sentAt) {
				lat = append(lat, now.Sub(sentAt[received-1]))
			}
			mu.Unlock()
		}
	}()
	for r.Status().State != monitor.StateConnected {
		time.Sleep(10 * time.Millisecond)
	}
	// The reader idling (read timeouts, silence watchdog) with nothing on the line.
	i0 := cpuTime()
	time.Sleep(2 * time.Second)
	idle := (cpuTime() - i0) / 2
	sctx, scancel := context.WithTimeout(ctx, benchFor)
	defer scancel()
	c0 := cpuTime()
	(&nonin.Simulator{OnFrame: func(int64, nonin.Frame, bool) {
		now := time.Now()
		mu.Lock()
		sentAt = append(sentAt, now)
		mu.Unlock()
	}}).Run(sctx, master)
	time.Sleep(200 * time.Millisecond)
	cpu := cpuTime() - c0
	cancel()
	sub.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		t.Fatal("nothing measured")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	rate := float64(received) / benchFor.Seconds()
	t.Logf("nonin (pty 9600 8N1, pleth 75 Hz): %d blocks, %.0f samples/s; frame in → sample on bus p50 %v p99 %v max %v", len(lat), rate, p(0.5), p(0.99), lat[len(lat)-1])
	t.Logf("nonin: CPU idle reader %.2f%% of one core", 100*idle.Seconds())
	t.Logf("nonin: CPU (simulator + reader) %.2f%% of one core = %.3f%% per 1,000 samples/s", 100*cpu.Seconds()/benchFor.Seconds(), 100*cpu.Seconds()/benchFor.Seconds()/(rate/1000))
}
