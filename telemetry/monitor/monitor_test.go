package monitor

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial/enumerator"

	"lifeline/hardware/serialport"
	"lifeline/internal/peers"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/nonin"
	"lifeline/telemetry/physio"
)

// cable is a socat null-modem cable between two pty links.
type cable struct {
	cmd  *exec.Cmd
	a, b string
}

func plug(t *testing.T, socat, a, b string) *cable {
	t.Helper()
	cmd := exec.Command(socat, "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &cable{cmd: cmd, a: a, b: b}
	t.Cleanup(c.pull)
	for i := 0; i < 100; i++ {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		if ea == nil && eb == nil {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("socat links did not appear")
	return nil
}

func (c *cable) pull() {
	if c.cmd.Process != nil && c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}

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

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func runSim(t *testing.T, path string, onFrame func(int64, nonin.Frame, bool)) (stop func()) {
	t.Helper()
	p, err := serialport.Open(path, serialport.Mode{Baud: 9600, DataBits: 8, Parity: 'N', StopBits: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&nonin.Simulator{Scenario: &physio.Scenario{HR: 90}, OnFrame: onFrame}).Run(ctx, p)
	}()
	return func() { cancel(); <-done; p.Close() }
}

// TestSerialAutoDetectSilenceAndReplug: a Nonin oximeter on a socat cable is detected
// among several protocols, every sample reaches the bus, the monitor going quiet is
// reported within 3 s, and after the cable is pulled and the USB adapter comes back
// under another device name (found by its VID/PID/serial) data flows again.
func TestSerialAutoDetectSilenceAndReplug(t *testing.T) {
	socat := peers.Need(t, "socat")[0]
	dir := t.TempDir()
	c1 := plug(t, socat, filepath.Join(dir, "ttyUSB0"), filepath.Join(dir, "oximeter"))

	// The enumerator stand-in: the adapter is whatever device the current cable's box
	// end points to.
	var mu sync.Mutex
	current := c1.a
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
	r, err := New(Config{Name: "spo2", Port: c1.a, Protocol: "auto", Bus: bus, Lister: lister,
		Drivers: []telemetry.Driver{hl7.New(nil), nonin.New(nil)}, RetryMax: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	var sent1 []float32
	var smu sync.Mutex
	stop := runSim(t, c1.b, func(_ int64, f nonin.Frame, _ bool) {
		smu.Lock()
		sent1 = append(sent1, float32(f.Pleth))
		smu.Unlock()
	})
	waitFor(t, 10*time.Second, "nonin detected and connected", func() bool {
		s := r.Status()
		return s.Protocol == "nonin" && s.State == StateConnected && len(col.pleth(0, -1)) > 150
	})
	if s := r.Status(); s.USB != "0403:6001 serial NONIN42" {
		t.Errorf("status USB %q", s.USB)
	}
	stop() // the monitor goes quiet; the cable stays
	quietFrom := time.Now()
	var silentAt time.Time
	waitFor(t, 5*time.Second, "silent event", func() bool {
		if i, _ := col.deviceAt(telemetry.DeviceSilent, 0); i >= 0 {
			silentAt = time.Now()
			return true
		}
		return false
	})
	if d := silentAt.Sub(quietFrom); d > 3*time.Second {
		t.Errorf("silence reported after %v, want within 3 s", d)
	}
	if r.Status().State != StateSilent {
		t.Errorf("state %s", r.Status().State)
	}
	// Every sample the oximeter sent before going quiet arrived, in order. The
	// detection window consumed the first second: compare the tail.
	got := col.pleth(0, -1)
	smu.Lock()
	want := sent1
	smu.Unlock()
	if len(got) < 150 || len(got) > len(want) {
		t.Fatalf("received %d samples, sent %d", len(got), len(want))
	}
	off := len(want) - len(got)
	for i := range got {
		if got[i] != want[off+i] {
			t.Fatalf("sample %d = %v, want %v", i, got[i], want[off+i])
		}
	}

	// Pull the cable; plug the adapter back in as another device name.
	c1.pull()
	// The device node goes away with the adapter (socat killed hard leaves its link).
	os.Remove(c1.a)
	os.Remove(c1.b)
	waitFor(t, 5*time.Second, "disconnected event", func() bool {
		i, _ := col.deviceAt(telemetry.DeviceDisconnected, 0)
		return i >= 0
	})
	c2 := plug(t, socat, filepath.Join(dir, "ttyUSB1"), filepath.Join(dir, "oximeter2"))
	mu.Lock()
	current = c2.a
	mu.Unlock()
	mark := len(col.snapshot())
	var sent2 []float32
	stop = runSim(t, c2.b, func(_ int64, f nonin.Frame, _ bool) {
		smu.Lock()
		sent2 = append(sent2, float32(f.Pleth))
		smu.Unlock()
	})
	waitFor(t, 10*time.Second, "data after replug", func() bool { return len(col.pleth(mark, -1)) > 150 })
	stop()
	time.Sleep(300 * time.Millisecond)
	// After the replug the samples are one unbroken run of what the oximeter sent; only
	// what went by while the box re-detected the protocol is missing at the start.
	got2 := col.pleth(mark, -1)
	smu.Lock()
	want2 := append([]float32(nil), sent2...)
	smu.Unlock()
	start := -1
	for k := 0; k+len(got2) <= len(want2) && start < 0; k++ {
		match := true
		for i := range got2 {
			if got2[i] != want2[k+i] {
				match = false
				break
			}
		}
		if match {
			start = k
		}
	}
	if start < 0 || start+len(got2) != len(want2) {
		t.Fatalf("after replug: %d samples received are not the unbroken tail of the %d sent (start %d)", len(got2), len(want2), start)
	}
	if s := r.Status(); s.Device != c2.a && s.Device != mustReal(c2.a) {
		t.Errorf("device after replug %q, want %s", s.Device, c2.a)
	}
	if s := r.Status(); s.Reconnects == 0 || s.BadBytes != 0 && s.Frames == 0 {
		t.Errorf("status %+v", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func mustReal(p string) string {
	r, _ := filepath.EvalSymlinks(p)
	return r
}

// TestHL7OverTCPListening: the box listens, a monitor connects, numerics reach the bus
// and GET /api/v1/vitals; the monitor reconnecting replaces its old connection.
func TestHL7OverTCPListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	bus := telemetry.NewBus(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := New(Config{Name: "bedside", Port: "tcp://" + addr, Protocol: "auto", Bus: bus, Drivers: []telemetry.Driver{hl7.New(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	monitor := func(ctx context.Context, hr float64) {
		var c net.Conn
		for c == nil && ctx.Err() == nil {
			c, _ = hl7.Dial(ctx, addr)
			time.Sleep(20 * time.Millisecond)
		}
		if c == nil {
			return
		}
		defer c.Close()
		(&hl7.Simulator{Scenario: &physio.Scenario{HR: hr}, BlockEvery: 100 * time.Millisecond}).Run(ctx, hl7.ConnPort(c))
	}
	hr := func() float64 {
		for _, n := range bus.Latest() {
			if n.Code == telemetry.MDC_ECG_HEART_RATE {
				return n.Value
			}
		}
		return 0
	}
	m1, stop1 := context.WithCancel(ctx)
	go monitor(m1, 71)
	waitFor(t, 5*time.Second, "HR 71", func() bool { return hr() == 71 })
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
	// The monitor reconnects (new connection, old one left open): the new one wins.
	m2, stop2 := context.WithCancel(ctx)
	defer stop2()
	go monitor(m2, 133)
	waitFor(t, 5*time.Second, "HR 133 from the new connection", func() bool { return hr() == 133 })
	stop1()
	if s := r.Status(); s.Protocol != "hl7" || s.Frames == 0 {
		t.Errorf("status %+v", s)
	}
	cancel()
	<-done
}
