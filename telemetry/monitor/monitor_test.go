package monitor

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
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
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/nonin"
	"lifeline/telemetry/physio"
)

// collector subscribes to the bus and keeps everything.
type collector struct {
	mu   sync.Mutex
	msgs []telemetry.Message
}

func collect(ctx context.Context, b *telemetry.Bus) *collector {
	c := &collector{}
	sub := b.Subscribe("test", 100000)
	go func() {
		defer sub.Unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-sub.C():
				c.mu.Lock()
				c.msgs = append(c.msgs, m)
				c.mu.Unlock()
			}
		}
	}()
	return c
}

func (c *collector) snapshot() []telemetry.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]telemetry.Message(nil), c.msgs...)
}

func (c *collector) deviceAt(st telemetry.DeviceState, after int) (int, *telemetry.DeviceEvent) {
	msgs := c.snapshot()
	for i := after; i < len(msgs); i++ {
		if d, ok := msgs[i].Event.(*telemetry.DeviceEvent); ok && d.State == st {
			return i, d
		}
	}
	return -1, nil
}

func (c *collector) pleth(from, to int) []float32 {
	msgs := c.snapshot()
	if to < 0 || to > len(msgs) {
		to = len(msgs)
	}
	var out []float32
	for _, m := range msgs[from:to] {
		if w, ok := m.Event.(*telemetry.Wave); ok && w.Code == telemetry.MDC_PULS_OXIM_PLETH {
			out = append(out, w.Samples...)
		}
	}
	return out
}

// runSim plays a Nonin oximeter on path; sent receives every intact pleth sample.
func runSim(t *testing.T, path string, sent func(float32)) (stop func()) {
	t.Helper()
	p, err := serialport.Open(path, serialport.Mode{Baud: 9600, DataBits: 8, Parity: 'N', StopBits: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sim := nonin.NewSimulator(nonin.SimConfig{Scenario: &physio.Scenario{HR: 90}, Sent: func(e telemetry.Event) {
		if w, ok := e.(*telemetry.Wave); ok {
			for _, v := range w.Samples {
				sent(v)
			}
		}
	}})
	go func() {
		defer close(done)
		sim.Run(ctx, p)
	}()
	return func() { cancel(); <-done; p.Close() }
}

// samples is what a simulated monitor sent, appended to while the test reads it.
type samples struct {
	mu sync.Mutex
	v  []float32
}

func (s *samples) add(v float32) { s.mu.Lock(); s.v = append(s.v, v); s.mu.Unlock() }

func (s *samples) all() []float32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]float32(nil), s.v...)
}

// serviceStatus returns the supervisor's entry for the reader.
func serviceStatus(sup *service.Supervisor, name string) service.Status {
	for _, st := range sup.Status() {
		if st.Name == name {
			return st
		}
	}
	return service.Status{}
}

// TestSerialAutoDetectSilenceAndReplug: a Nonin oximeter on a socat cable is detected
// among several protocols, every sample reaches the bus, the monitor going quiet is
// reported within 3 s (as a device event and as the service's degraded health, naming
// the port and what to check), and after the cable is pulled and the USB adapter comes
// back under another device name (found by its VID/PID/serial) data flows again.
func TestSerialAutoDetectSilenceAndReplug(t *testing.T) {
	t.Parallel()
	c1 := peers.PlugCable(t)

	// The enumerator stand-in: the adapter is whatever device the current cable's box
	// end points to.
	var mu sync.Mutex
	current := c1.BoxEnd
	lister := func() ([]*enumerator.PortDetails, error) {
		mu.Lock()
		defer mu.Unlock()
		real, err := filepath.EvalSymlinks(current)
		if err != nil {
			return nil, nil // unplugged
		}
		return []*enumerator.PortDetails{{Name: real, IsUSB: true, VID: "0403", PID: "6001", SerialNumber: "NONIN42"}}, nil
	}
	bus := telemetry.NewBus(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := collect(ctx, bus)
	r, err := New(Config{Name: "spo2", Port: c1.BoxEnd, Protocol: "auto", Bus: bus, Lister: lister,
		Drivers: []telemetry.Driver{hl7.New(hl7.Config{}), nonin.New(nonin.Config{})}, RetryMax: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The reader runs as the appliance runs it: a service reporting its own health.
	sup := service.NewSupervisor(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), service.DefaultBackoff)
	sup.Add(r.Service())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, 10*time.Second) }()

	var sent1 samples
	stop := runSim(t, c1.DeviceEnd, sent1.add)
	wait.For(t, 15*time.Second, "nonin detected and connected", func() bool {
		s := r.Status()
		return s.Protocol == "nonin" && s.State == StateConnected && len(col.pleth(0, -1)) > 75
	})
	wait.For(t, 5*time.Second, "the service ready", func() bool {
		st := serviceStatus(sup, "monitor spo2")
		return st.State == service.Ready && strings.Contains(st.Detail, "NONIN on ")
	})
	if s := r.Status(); s.USB != "0403:6001 serial NONIN42" {
		t.Errorf("status USB %q", s.USB)
	}
	stop() // the monitor goes quiet; the cable stays
	var silent *telemetry.DeviceEvent
	wait.For(t, 10*time.Second, "silent event", func() bool {
		_, silent = col.deviceAt(telemetry.DeviceSilent, 0)
		return silent != nil
	})
	// The promise is the event within 3 s of the last valid frame: measured between
	// the two, not by when this test got round to looking.
	if d := silent.ReceiveTime.Sub(r.Status().LastFrame); d > 3*time.Second {
		t.Errorf("silence reported %v after the last frame, want within 3 s", d)
	}
	if r.Status().State != StateSilent {
		t.Errorf("state %s", r.Status().State)
	}
	st := serviceStatus(sup, "monitor spo2")
	if st.State != service.Degraded || !strings.Contains(st.Detail, "NONIN on ") || !strings.Contains(st.Detail, "silent for 3s") || !strings.Contains(st.Detail, "check the cable") {
		t.Errorf("service while the monitor is silent: %s %q; want degraded, naming the port, the silence and what to check", st.State, st.Detail)
	}
	// Every sample the oximeter sent before going quiet arrived, in order; only what
	// went by while the box detected the protocol is missing at the start.
	checkUnbrokenTail(t, "before going quiet", col.pleth(0, -1), sent1.all())

	// Pull the cable (its device node goes away with it); plug the adapter back in as
	// another device name.
	c1.Pull()
	wait.For(t, 10*time.Second, "disconnected event", func() bool {
		i, _ := col.deviceAt(telemetry.DeviceDisconnected, 0)
		return i >= 0
	})
	wait.For(t, 10*time.Second, "the service degraded with the port gone", func() bool {
		st := serviceStatus(sup, "monitor spo2")
		return st.State == service.Degraded && strings.Contains(st.Detail, "plugged in") && st.LastError != ""
	})
	c2 := peers.PlugCable(t)
	mu.Lock()
	current = c2.BoxEnd
	mu.Unlock()
	mark := len(col.snapshot())
	var sent2 samples
	stop = runSim(t, c2.DeviceEnd, sent2.add)
	wait.For(t, 15*time.Second, "data after replug", func() bool { return len(col.pleth(mark, -1)) > 75 })
	stop()
	// What was on the line when the oximeter stopped arrives: wait for its last sample.
	wait.For(t, 10*time.Second, "the last sample sent to arrive", func() bool {
		got, want := col.pleth(mark, -1), sent2.all()
		return len(got) > 0 && len(want) > 0 && got[len(got)-1] == want[len(want)-1]
	})
	// After the replug, likewise.
	checkUnbrokenTail(t, "after the replug", col.pleth(mark, -1), sent2.all())
	if s := r.Status(); s.Device != c2.BoxEnd && s.Device != mustReal(c2.BoxEnd) {
		t.Errorf("device after replug %q, want %s", s.Device, c2.BoxEnd)
	}
	if s := r.Status(); s.Reconnects == 0 || s.BadBytes != 0 && s.Frames == 0 {
		t.Errorf("status %+v", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// checkUnbrokenTail checks that got is the unbroken tail of want: every sample sent
// after the first one received arrived, in order. A reader misses the start while it
// detects the protocol; nothing after that may be lost.
func checkUnbrokenTail(t *testing.T, when string, got, want []float32) {
	t.Helper()
	if len(got) < 75 || len(got) > len(want) {
		t.Fatalf("%s: received %d samples, sent %d", when, len(got), len(want))
	}
	off := len(want) - len(got)
	for i := range got {
		if got[i] != want[off+i] {
			t.Fatalf("%s: sample %d of the %d received = %v, but the tail of the %d sent has %v", when, i, len(got), got[i], len(want), want[off+i])
		}
	}
}

func mustReal(p string) string {
	r, _ := filepath.EvalSymlinks(p)
	return r
}

// TestHL7OverTCPListening: the box listens, a monitor connects, numerics reach the bus
// and GET /api/v1/vitals; the monitor reconnecting after closing its connection is
// read again (a half-open old connection: TestSilentMonitorGivesWay).
func TestHL7OverTCPListening(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	bus := telemetry.NewBus(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := prometheus.NewRegistry()
	r, err := New(Config{Name: "bedside", Port: "tcp://" + addr, Protocol: "auto", Bus: bus, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, nil) }()
	monitor := func(ctx context.Context, hr float64) {
		var c net.Conn
		// The reader may not listen yet: dial until it does, as a monitor retries.
		wait.Until(10*time.Second, func() bool {
			c, _ = hl7.Dial(ctx, addr)
			return c != nil || ctx.Err() != nil
		})
		if c == nil {
			return
		}
		defer c.Close()
		hl7.NewSimulator(hl7.SimConfig{Scenario: &physio.Scenario{HR: hr}, BlockEvery: 100 * time.Millisecond}).Run(ctx, hl7.ConnPort(c))
	}
	hr := func() float64 {
		for _, n := range bus.Latest() {
			if n.Code == telemetry.MDC_ECG_HEART_RATE {
				return n.Value
			}
		}
		return 0
	}
	// The port was free a moment ago; until the reader holds it, a dial could reach
	// whoever took it in between (the reader keeps retrying its listen).
	wait.For(t, 20*time.Second, "the reader listening", func() bool { return r.Status().State == StateListening })
	m1, stop1 := context.WithCancel(ctx)
	go monitor(m1, 71)
	wait.For(t, 10*time.Second, "HR 71", func() bool { return hr() == 71 })
	rec := httptest.NewRecorder()
	telemetry.VitalsHandler(bus).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/vitals", nil))
	var vitals []telemetry.Vital
	if err := json.Unmarshal(rec.Body.Bytes(), &vitals); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range vitals {
		if v.Code == "MDC_ECG_HEART_RATE" && v.Value == 71 && v.Unit == "/min" {
			if _, err := time.Parse(time.RFC3339, v.Time); err != nil {
				t.Errorf("time %q: %v", v.Time, err)
			}
			found = true
		}
	}
	if !found {
		t.Errorf("vitals %s", rec.Body.String())
	}
	// The monitor closes its connection and reconnects, retrying as monitors do should
	// it come back before the box saw the old connection end.
	stop1()
	m2, stop2 := context.WithCancel(ctx)
	defer stop2()
	runTCPMonitor(t, m2, addr, "", 133, 0)
	wait.For(t, 10*time.Second, "HR 133 from the new connection", func() bool { return hr() == 133 })
	if s := r.Status(); s.Protocol != "hl7" || s.Frames == 0 {
		t.Errorf("status %+v", s)
	}
	// The same counts reach /metrics, labelled by monitor.
	metrics := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == "bedside" {
				metrics[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	if metrics["lifeline_telemetry_frames_total"] == 0 || metrics["lifeline_telemetry_events_total"] == 0 || metrics["lifeline_telemetry_monitor_up"] != 1 {
		t.Errorf("metrics of the bedside monitor: %v", metrics)
	}
	cancel()
	<-done
}
