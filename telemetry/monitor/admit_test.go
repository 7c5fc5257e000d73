package monitor

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"lifeline/internal/service"
	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/physio"
)

// tcpMonitor is a simulated HL7 monitor connecting over TCP as a real one does:
// it redials when its connection fails, and its connection stays open after it stops
// sending (a half-open connection after a network blip) until the test ends.
type tcpMonitor struct {
	sim   *hl7.Simulator
	dials atomic.Int32 // connections made
	lost  atomic.Int32 // connections that failed while it was sending
}

// runTCPMonitor starts a monitor sending hr and spo2 to addr from the local address
// local ("" for any), until ctx ends.
func runTCPMonitor(t *testing.T, ctx context.Context, addr, local string, hr, spo2 float64) *tcpMonitor {
	m := &tcpMonitor{sim: hl7.NewSimulator(hl7.SimConfig{Scenario: &physio.Scenario{HR: hr, SpO2: spo2}, BlockEvery: 100 * time.Millisecond})}
	d := net.Dialer{}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	go func() {
		for ctx.Err() == nil {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				m.dials.Add(1)
				t.Cleanup(func() { c.Close() })
				m.sim.Run(ctx, hl7.ConnPort(c))
				if ctx.Err() != nil {
					return // stopped sending; the connection stays open
				}
				m.lost.Add(1)
				c.Close()
			}
			// A monitor retries its HL7 server every few hundred milliseconds.
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return m
}

// latest returns the latest value of code on the bus (0: none).
func latest(bus *telemetry.Bus, code telemetry.Code) float64 {
	for _, n := range bus.Latest() {
		if n.Code == code {
			return n.Value
		}
	}
	return 0
}

// listeningReader runs a reader listening on a free loopback port with cfg's Allow
// and SilenceLimit, and returns it with its address, bus and registry.
func listeningReader(t *testing.T, ctx context.Context, cfg Config) (*Reader, string, *telemetry.Bus, *prometheus.Registry, *service.Supervisor) {
	t.Helper()
	// The port is found free and then given to the reader, so another test (or another
	// package's test binary) may take it in between; a client dialling then would reach
	// that stranger. Each attempt waits until the reader itself listens, and a stolen
	// port is given up for a new one.
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := cfg
		c.Name, c.Port, c.Protocol = "bedside", "tcp://"+addr, "hl7"
		c.Bus = telemetry.NewBus(nil)
		reg := prometheus.NewRegistry()
		c.Registerer = reg
		r, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		sup := service.NewSupervisor(telemetry.DiscardLogger(nil), prometheus.NewRegistry(), service.DefaultBackoff)
		sup.Add(r.Service())
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); sup.Run(runCtx, 2*time.Second) }()
		if wait.Until(5*time.Second, func() bool { return r.Status().State == StateListening }) == nil {
			t.Cleanup(func() { stop(); <-done })
			return r, addr, c.Bus, reg, sup
		}
		stop()
		<-done
		if attempt == 3 {
			t.Fatalf("the reader never listened on %s: %+v", addr, r.Status())
		}
		t.Logf("port %s was taken before the reader could listen (%s); trying another", addr, r.Status().LastError)
	}
}

// TestNobodyCanReplaceTheMonitor reproduces the attack of issue 16 item 2 against a
// real listener: while the real monitor sends SpO2 97 % and HR 72, a stranger (an
// address outside the allow-list) and then a second client from an allowed address
// connect and send SpO2 62 % and HR 180. Both are refused and counted, the vitals stay
// the real monitor's, the real monitor keeps its one connection and its ACKs, and the
// reader's status and health say that someone tried.
func TestNobodyCanReplaceTheMonitor(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	allow, err := ParseAllow([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	r, addr, bus, reg, sup := listeningReader(t, ctx, Config{Allow: allow, SilenceLimit: time.Second})

	real := runTCPMonitor(t, ctx, addr, "127.0.0.1", 72, 97)
	wait.For(t, 10*time.Second, "the real monitor's HR 72 and SpO2 97", func() bool {
		return latest(bus, telemetry.MDC_ECG_HEART_RATE) == 72 && latest(bus, telemetry.MDC_PULS_OXIM_SAT_O2) == 97
	})

	// A stranger on the network: 127.0.0.2 is not in the allow-list.
	stranger := runTCPMonitor(t, ctx, addr, "127.0.0.2", 180, 62)
	wait.For(t, 10*time.Second, "the stranger refused", func() bool {
		return testutil.ToFloat64(r.refusals.metric.WithLabelValues(refusedStranger)) >= 2
	})
	// An allowed address while the real monitor sends: refused too.
	second := runTCPMonitor(t, ctx, addr, "127.0.0.1", 180, 62)
	wait.For(t, 10*time.Second, "the second client refused", func() bool {
		return testutil.ToFloat64(r.refusals.metric.WithLabelValues(refusedBusy)) >= 2
	})
	acksBefore, _, _ := real.sim.Acks()
	wait.For(t, 10*time.Second, "the real monitor still acknowledged", func() bool {
		ok, _, _ := real.sim.Acks()
		return ok > acksBefore+5
	})

	if hr, spo2 := latest(bus, telemetry.MDC_ECG_HEART_RATE), latest(bus, telemetry.MDC_PULS_OXIM_SAT_O2); hr != 72 || spo2 != 97 {
		t.Errorf("vitals HR %v SpO2 %v; want the real monitor's 72 and 97", hr, spo2)
	}
	if real.dials.Load() != 1 || real.lost.Load() != 0 {
		t.Errorf("the real monitor dialled %d times and lost %d connections; want one connection, kept", real.dials.Load(), real.lost.Load())
	}
	if ok, _, _ := stranger.sim.Acks(); ok != 0 {
		t.Errorf("the stranger got %d ACKs", ok)
	}
	if ok, _, _ := second.sim.Acks(); ok != 0 {
		t.Errorf("the second client got %d ACKs", ok)
	}
	st := r.Status()
	if st.Refused < 4 || !strings.Contains(st.LastRefused, "127.0.0.") || st.LastRefusedAt.IsZero() {
		t.Errorf("status %+v: want the refusals counted and the last one named", st)
	}
	if got := testutil.ToFloat64(r.refusals.metric.WithLabelValues(refusedStranger)); got < 2 {
		t.Errorf("lifeline_telemetry_refused_connections_total{reason=not_allowed} = %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "lifeline_telemetry_refused_connections_total"); err != nil || n != 2 {
		t.Errorf("refused connection series in /metrics: %d, %v", n, err)
	}
	for _, s := range sup.Status() {
		if s.Name == "monitor bedside" && (s.State != service.Ready || !strings.Contains(s.Detail, "refused")) {
			t.Errorf("health %s %q: want ready, saying connections were refused", s.State, s.Detail)
		}
	}
}

// TestSilentMonitorGivesWay: a monitor whose old connection is left open but silent
// (a network blip) gets back in on a new connection once the old one has been silent
// for the silence limit, and its new data reaches the bus.
func TestSilentMonitorGivesWay(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, addr, bus, _, _ := listeningReader(t, ctx, Config{SilenceLimit: 500 * time.Millisecond})
	old, stopOld := context.WithCancel(ctx)
	runTCPMonitor(t, old, addr, "", 71, 97)
	wait.For(t, 10*time.Second, "HR 71", func() bool { return latest(bus, telemetry.MDC_ECG_HEART_RATE) == 71 })
	stopOld() // silent, connection open
	runTCPMonitor(t, ctx, addr, "", 133, 97)
	wait.For(t, 10*time.Second, "HR 133 from the new connection", func() bool { return latest(bus, telemetry.MDC_ECG_HEART_RATE) == 133 })
	if st := r.Status(); st.State != StateConnected {
		t.Errorf("state %s", st.State)
	}
}

// TestRefusedConnectionIsClosedAtOnce: a stranger's connection is closed before it is
// read, whatever it sends: it gets no ACK and its bytes are never parsed.
func TestRefusedConnectionIsClosedAtOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	allow, _ := ParseAllow([]string{"127.0.0.1/32"})
	r, addr, _, _, _ := listeningReader(t, ctx, Config{Allow: allow})
	var c net.Conn
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
	wait.For(t, 10*time.Second, "the reader listening", func() bool {
		c, _ = d.DialContext(ctx, "tcp", addr)
		return c != nil
	})
	defer c.Close()
	c.Write(hl7.Frame(nil, []byte("MSH|^~\\&|X|Y|||2026||ORU^R01|1|P|2.6|||AL\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|62\r")))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); len(b) != 0 || (err != nil && !strings.Contains(err.Error(), "reset")) {
		t.Fatalf("refused connection answered %q (%v); want it closed without a word", b, err)
	}
	if st := r.Status(); st.Frames != 0 || st.Refused == 0 {
		t.Fatalf("status %+v: want no frame read and the refusal counted", st)
	}
}

// TestListenerBeyondLoopbackNeedsAllowList: the safe default. A listener on every
// interface without an allow-list is refused at New; with one it is taken; an
// allow-list where the box does not listen is a mistake; bad entries are named.
func TestListenerBeyondLoopbackNeedsAllowList(t *testing.T) {
	bus := telemetry.NewBus(nil)
	allow, err := ParseAllow([]string{"10.20.0.15", "10.20.1.0/24", "::ffff:10.20.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		port  string
		allow []string
		want  string
	}{
		{"tcp://0.0.0.0:2575", nil, "listens beyond loopback"},
		{"tcp://:2575", nil, "listens beyond loopback"},
		{"tcp://10.20.0.1:2575", nil, "listens beyond loopback"},
		{"tcp://0.0.0.0:2575", []string{"10.20.0.15"}, ""},
		{"tcp://127.0.0.1:2575", nil, ""},
		{"tcp://localhost:2575", nil, ""},
		{"tcp-connect://10.20.0.15:2575", []string{"10.20.0.15"}, "only for a tcp://"},
	} {
		a, _ := ParseAllow(c.allow)
		_, err := New(Config{Port: c.port, Protocol: "hl7", Bus: bus, Allow: a})
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s allow %v: %v; want %q", c.port, c.allow, err, c.want)
		}
	}
	r := &Reader{cfg: Config{Allow: allow}}
	for addr, want := range map[string]bool{"10.20.0.15": true, "10.20.0.16": false, "10.20.1.200": true, "10.20.2.1": true, "127.0.0.1": false} {
		if got := r.admits(&net.TCPAddr{IP: net.ParseIP(addr), Port: 4000}); got != want {
			t.Errorf("admits %s = %v, want %v", addr, got, want)
		}
	}
	if _, err := ParseAllow([]string{"monitor.local"}); err == nil || !strings.Contains(err.Error(), `"monitor.local"`) {
		t.Errorf("ParseAllow of a name: %v", err)
	}
}
