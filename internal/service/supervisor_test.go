package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"lifeline/internal/wait"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func statusOf(s *Supervisor, name string) Status {
	for _, st := range s.Status() {
		if st.Name == name {
			return st
		}
	}
	return Status{}
}

func TestFailingServiceRestartsWithBackoffOthersUnaffected(t *testing.T) {
	reg := prometheus.NewRegistry()
	sup := NewSupervisor(quietLog(), reg, Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Reset: time.Hour})
	var starts atomic.Int32
	var startTimes [6]time.Time
	sup.Add(Service{Name: "flaky", Run: func(ctx context.Context, h *Health) error {
		n := starts.Add(1)
		if int(n) <= len(startTimes) {
			startTimes[n-1] = time.Now()
		}
		if n <= 5 {
			return errors.New("serial port vanished")
		}
		h.Ready("reading")
		<-ctx.Done()
		return nil
	}})
	var steadyStarts atomic.Int32
	sup.Add(Service{Name: "steady", Run: func(ctx context.Context, h *Health) error {
		steadyStarts.Add(1)
		h.Ready("serving")
		<-ctx.Done()
		return nil
	}})
	var panics atomic.Int32
	sup.Add(Service{Name: "panicky", Run: func(ctx context.Context, h *Health) error {
		if panics.Add(1) == 1 {
			panic("nil map")
		}
		h.Degraded("not enrolled", errors.New("no identity"))
		<-ctx.Done()
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- sup.Run(ctx, time.Second) }()

	wait.For(t, 10*time.Second, "flaky ready", func() bool { return statusOf(sup, "flaky").State == Ready })
	wait.For(t, 10*time.Second, "panicky degraded", func() bool { return statusOf(sup, "panicky").State == Degraded })
	st := statusOf(sup, "flaky")
	if st.Restarts != 5 || st.LastError != "serial port vanished" {
		t.Fatalf("flaky status: %+v", st)
	}
	// Delays double from 10 ms and are capped at 40 ms: 10, 20, 40, 40, 40.
	want := []time.Duration{10, 20, 40, 40, 40}
	for i, w := range want {
		gap := startTimes[i+1].Sub(startTimes[i])
		if gap < w*time.Millisecond || gap > w*time.Millisecond+200*time.Millisecond {
			t.Errorf("restart %d after %s, want about %dms", i+1, gap, w)
		}
	}
	if steadyStarts.Load() != 1 || statusOf(sup, "steady").State != Ready {
		t.Fatal("a failing service disturbed a healthy one")
	}
	if p := statusOf(sup, "panicky"); p.Restarts != 1 || !strings.Contains(p.LastError, "no identity") {
		t.Fatalf("panicky: %+v", p)
	}
	if got := testutil.ToFloat64(sup.restarts.WithLabelValues("flaky")); got != 5 {
		t.Fatalf("restart counter = %v", got)
	}
	if got := testutil.ToFloat64(sup.state.WithLabelValues("panicky", "degraded")); got != 1 {
		t.Fatalf("state gauge = %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, s := range sup.Status() {
		if s.State != Stopped {
			t.Fatalf("%s is %s after shutdown", s.Name, s.State)
		}
	}
}

func TestShutdownReportsStuckService(t *testing.T) {
	sup := NewSupervisor(quietLog(), prometheus.NewRegistry(), DefaultBackoff)
	release := make(chan struct{})
	defer close(release)
	sup.Add(Service{Name: "stuck", Run: func(ctx context.Context, h *Health) error {
		<-release // ignores ctx
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := sup.Run(ctx, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "stuck") {
		t.Fatalf("want a report naming the stuck service, got %v", err)
	}
}

func TestOverall(t *testing.T) {
	cases := []struct {
		states []State
		want   State
	}{
		{[]State{Ready, Ready}, Ready},
		{[]State{Ready, Degraded}, Degraded},
		{[]State{Starting, Degraded, Failed}, Failed},
		{[]State{Ready, Starting}, Starting},
	}
	for _, c := range cases {
		var ss []Status
		for _, s := range c.states {
			ss = append(ss, Status{State: s})
		}
		if got := Overall(ss); got != c.want {
			t.Errorf("Overall(%v) = %s, want %s", c.states, got, c.want)
		}
	}
}

// TestSleepEndsWithItsContext: Sleep reports a full wait, and returns at once, false,
// when the service is stopped during it.
func TestSleepEndsWithItsContext(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("a full wait reported as stopped")
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	start := time.Now()
	if Sleep(ctx, time.Minute) {
		t.Fatal("a stopped wait reported as full")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Sleep returned %v after its context ended", took)
	}
}
