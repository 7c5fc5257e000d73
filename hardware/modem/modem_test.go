package modem

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.bug.st/serial/enumerator"

	"lifeline/hardware/serialport"
	"lifeline/internal/peers"
	"lifeline/internal/service"
	"lifeline/internal/wait"
)

// fakeClock lets a test move the simulated drive along.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// simulatorOnCable runs the module simulator on the device end of a socat cable at
// the RM520N's 115200 baud and returns the box end's path.
func simulatorOnCable(t *testing.T, cfg SimConfig) (*peers.Cable, func()) {
	t.Helper()
	c := peers.PlugCable(t)
	dev, err := serialport.Open(c.DeviceEnd, serialport.Mode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Simulate(ctx, dev, cfg)
	}()
	stop := func() { cancel(); dev.Close(); <-done }
	t.Cleanup(stop)
	return c, stop
}

func TestPollThroughCableWithEchoURCsAndOutage(t *testing.T) {
	start := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: start}
	cable, _ := simulatorOnCable(t, SimConfig{Now: clock.Now, URCEvery: time.Nanosecond,
		Profile: DriveProfile(2*time.Minute, Outage{After: 90 * time.Second, For: 20 * time.Second})})
	box, err := serialport.Open(cable.BoxEnd, serialport.Mode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	at := NewATPort(box, box)
	var urcs []string
	var mu sync.Mutex
	at.OnURC = func(l string) { mu.Lock(); urcs = append(urcs, l); mu.Unlock() }
	ctx := context.Background()

	for _, c := range []struct {
		at   time.Duration
		tech Technology
		reg  bool
	}{
		{0, NR5GSA, true},                   // next to a site
		{40 * time.Second, NR5GNSA, true},   // weaker: EN-DC
		{60 * time.Second, LTE, true},       // between sites
		{100 * time.Second, NoRadio, false}, // the tunnel
		{130 * time.Second, NR5GSA, true},   // out again
	} {
		clock.Set(start.Add(c.at))
		q, err := Poll(ctx, at, 2*time.Second, clock.Now())
		if err != nil {
			t.Fatalf("at %v: %v", c.at, err)
		}
		if q.Technology != c.tech || q.Registered != c.reg || !q.SIMReady {
			t.Errorf("at %v: %+v, want %s registered=%v", c.at, q, c.tech, c.reg)
		}
		if c.reg && (!q.HasRSRP || !q.HasSINR || q.Operator != "CHINA MOBILE" || q.Bars < 1) {
			t.Errorf("at %v: measurements %+v", c.at, q)
		}
		if !c.reg && q.Bars != 0 {
			t.Errorf("in the tunnel: %d bars", q.Bars)
		}
	}
	st := at.Stats()
	if st.Echoes == 0 || st.URCs == 0 || st.Timeouts != 0 {
		t.Errorf("echo and URCs were not exercised: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(urcs[0], `+QIND: "csq"`) {
		t.Errorf("URCs %q", urcs)
	}
}

func TestCommandErrorsAndSilentModule(t *testing.T) {
	r, w := io.Pipe()
	defer r.Close()
	mod, box := io.Pipe()
	defer mod.Close()
	go Simulate(context.Background(), struct {
		io.Reader
		io.Writer
	}{r, box}, SimConfig{SIM: "NOT INSERTED", NoEcho: true})
	at := NewATPort(mod, w)
	if _, err := at.Exec(context.Background(), "AT+CPIN?", "+CPIN:", time.Second); !errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), "+CME ERROR: 10") {
		t.Errorf("no SIM: %v", err)
	}
	q, err := Poll(context.Background(), at, time.Second, time.Now())
	if err != nil || q.SIMReady || q.Registered || q.SIMState != "NOT INSERTED" {
		t.Errorf("poll without SIM: %+v %v", q, err)
	}

	// A module that answers nothing: every command times out and Poll says so.
	sr, _ := io.Pipe()
	silent := NewATPort(sr, io.Discard)
	start := time.Now()
	if _, err := Poll(context.Background(), silent, 50*time.Millisecond, time.Now()); err == nil {
		t.Error("a silent module polled fine")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("per-command timeouts not applied: %v", d)
	}
	if silent.Stats().Timeouts != 7 {
		t.Errorf("timeouts %d, want one per command", silent.Stats().Timeouts)
	}
}

func TestModemServiceThroughCable(t *testing.T) {
	cable, stop := simulatorOnCable(t, SimConfig{})
	m := New(Config{Port: cable.BoxEnd, Interval: 100 * time.Millisecond, CommandTimeout: time.Second})
	sup := service.NewSupervisor(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), service.DefaultBackoff)
	sup.Add(service.Service{Name: "modem", Run: m.Run})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, 5*time.Second) }()
	defer func() { cancel(); <-done }()
	status := func() service.Status { return sup.Status()[0] }
	wait.For(t, 10*time.Second, "the modem service to be ready on NR5G-SA", func() bool {
		return status().State == service.Ready && m.Latest().Technology == NR5GSA
	})
	if sig, ok := m.Signal(); !ok || sig < 20 {
		t.Errorf("signal for JT/T 808: %d %v", sig, ok)
	}
	stop()
	cable.Pull()
	wait.For(t, 15*time.Second, "the service to degrade after the module went away", func() bool {
		return status().State == service.Degraded
	})
}

// TestModemFoundAgainAfterReplug: the module's USB port comes back under another name
// (ttyUSB2 → ttyUSB5 after a brown-out); the Modem finds it by its USB identity.
func TestModemFoundAgainAfterReplug(t *testing.T) {
	first, stop1 := simulatorOnCable(t, SimConfig{})
	var mu sync.Mutex
	current := first.BoxEnd
	usb := serialport.USBID{VID: "2c7c", PID: "0801", Serial: "RM520N-1"} // Quectel RM520N
	lister := func() ([]*enumerator.PortDetails, error) {
		mu.Lock()
		defer mu.Unlock()
		return []*enumerator.PortDetails{{Name: current, IsUSB: true, VID: usb.VID, PID: usb.PID, SerialNumber: usb.Serial}}, nil
	}
	clock := &fakeClock{t: time.Unix(0, 0)}
	m := New(Config{Port: first.BoxEnd, USB: usb, Lister: lister, Interval: 100 * time.Millisecond, CommandTimeout: 500 * time.Millisecond, Now: clock.Now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, &service.Health{}) }()
	defer func() { cancel(); <-done }()
	wait.For(t, 10*time.Second, "a first poll", func() bool { return m.Latest().Registered })
	stop1()
	first.Pull()
	second, _ := simulatorOnCable(t, SimConfig{Profile: DriveProfile(time.Minute, Outage{After: 0, For: time.Hour})})
	mu.Lock()
	current = second.BoxEnd
	mu.Unlock()
	clock.Set(time.Unix(1, 0))
	wait.For(t, 20*time.Second, "a poll of the module under its new name (in an outage, so not registered)", func() bool {
		q := m.Latest()
		return q.Time.Equal(time.Unix(1, 0)) && !q.Registered && q.SIMReady
	})
}
