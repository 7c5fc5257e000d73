package datex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"lifeline/hardware/serialport"
	"lifeline/internal/peers"
	"lifeline/telemetry"
	"lifeline/telemetry/physio"
)

// cable is a null-modem cable made of a socat pty pair; both ends are opened through
// go.bug.st/serial (hardware/serialport) at the protocol's line setting.
type cable struct {
	cmd        *exec.Cmd
	box, moni  *serialport.Port
	boxPath    string
	monitorDev string
}

func plugCable(t *testing.T, mode telemetry.SerialMode) *cable {
	t.Helper()
	socat := peers.Need(t, "socat")[0]
	dir := t.TempDir()
	a, b := filepath.Join(dir, "box"), filepath.Join(dir, "monitor")
	cmd := exec.Command(socat, "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		_, e1 := os.Stat(a)
		_, e2 := os.Stat(b)
		if e1 == nil && e2 == nil {
			break
		}
		if i > 200 {
			cmd.Process.Kill()
			t.Fatal("socat did not create the pty pair")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := serialport.Mode{Baud: mode.Baud, DataBits: mode.DataBits, Parity: mode.Parity.String()[0], StopBits: mode.StopBits}
	box, err := serialport.Open(a, m)
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	moni, err := serialport.Open(b, m)
	if err != nil {
		box.Close()
		cmd.Process.Kill()
		t.Fatal(err)
	}
	c := &cable{cmd: cmd, box: box, moni: moni, boxPath: a, monitorDev: b}
	t.Cleanup(c.pull)
	return c
}

// pull takes the cable out: socat dies and both ptys vanish under the open ports.
func (c *cable) pull() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
	c.box.Close()
	c.moni.Close()
}

// recorder is a telemetry.Sink that keeps everything.
type recorder struct {
	mu      sync.Mutex
	events  []telemetry.Event
	frames  int
	skipped map[string]int
}

func (r *recorder) Emit(e telemetry.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}
func (r *recorder) Frame() { r.mu.Lock(); r.frames++; r.mu.Unlock() }
func (r *recorder) Skipped(n int, why string) {
	r.mu.Lock()
	if r.skipped == nil {
		r.skipped = map[string]int{}
	}
	r.skipped[why] += n
	r.mu.Unlock()
}
func (r *recorder) all() []telemetry.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]telemetry.Event(nil), r.events...)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type numKey struct {
	code    telemetry.Code
	value   float64
	unit    string
	at      int64
	invalid bool
}

// compare checks that the driver produced exactly the numerics and wave samples the
// simulator sent intact, with the right code, unit and value.
func compare(t *testing.T, sent, got []telemetry.Event) (waves map[telemetry.Code]int) {
	t.Helper()
	count := func(evs []telemetry.Event) (map[numKey]int, map[telemetry.Code][]float32, map[telemetry.Code]string, map[string]bool) {
		nums := map[numKey]int{}
		samples := map[telemetry.Code][]float32{}
		units := map[telemetry.Code]string{}
		alarms := map[string]bool{}
		for _, e := range evs {
			switch v := e.(type) {
			case *telemetry.Numeric:
				nums[numKey{v.Code, v.Value, v.Unit, v.MonitorTime.Unix(), v.Invalid}]++
			case *telemetry.Wave:
				if v.Rate <= 0 {
					t.Errorf("wave %s without rate", v.Code)
				}
				samples[v.Code] = append(samples[v.Code], v.Samples...)
				if u, ok := units[v.Code]; ok && u != v.Unit {
					t.Errorf("wave %s changes unit %s -> %s", v.Code, u, v.Unit)
				}
				units[v.Code] = v.Unit
			case *telemetry.Alarm:
				if v.On {
					alarms[fmt.Sprintf("%s/%s", v.Text, v.Priority)] = true
				}
			}
		}
		return nums, samples, units, alarms
	}
	sn, ss, su, sa := count(sent)
	gn, gs, gu, ga := count(got)
	if len(sn) == 0 || len(ss) == 0 {
		t.Fatalf("the simulator sent %d numerics and %d wave channels: nothing to compare", len(sn), len(ss))
	}
	for k, n := range sn {
		if gn[k] != n {
			t.Errorf("numeric %s=%v %s at %d: sent %d times, received %d", k.code, k.value, k.unit, k.at, n, gn[k])
		}
	}
	for k, n := range gn {
		if sn[k] == 0 {
			t.Errorf("numeric %s=%v %s at %d received %d times but never sent", k.code, k.value, k.unit, k.at, n)
		}
	}
	waves = map[telemetry.Code]int{}
	for code, s := range ss {
		g := gs[code]
		if su[code] != gu[code] {
			t.Errorf("wave %s: unit %q, sent %q", code, gu[code], su[code])
		}
		if len(g) != len(s) {
			t.Errorf("wave %s: received %d samples, sent %d", code, len(g), len(s))
			continue
		}
		for i := range s {
			if g[i] != s[i] && !(math.IsNaN(float64(g[i])) && math.IsNaN(float64(s[i]))) {
				t.Errorf("wave %s sample %d: %v, sent %v", code, i, g[i], s[i])
				break
			}
		}
		waves[code] = len(g)
	}
	for code := range gs {
		if _, ok := ss[code]; !ok {
			t.Errorf("wave %s received but never sent", code)
		}
	}
	for a := range sa {
		if !ga[a] {
			t.Errorf("alarm %s sent but not raised", a)
		}
	}
	return waves
}

type run struct {
	sent    *recorder
	got     *recorder
	simErr  chan error
	drvErr  chan error
	stopSim context.CancelFunc
	stopDrv context.CancelFunc
}

func start(c *cable, sim *Simulator, sent *recorder, drv *Driver) *run {
	s := &run{sent: sent, got: &recorder{}, simErr: make(chan error, 1), drvErr: make(chan error, 1)}
	sctx, scancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithCancel(context.Background())
	s.stopSim, s.stopDrv = scancel, dcancel
	go func() { s.simErr <- sim.Run(sctx, c.moni) }()
	go func() { s.drvErr <- drv.Run(dctx, c.box, s.got) }()
	return s
}

func waitErr(t *testing.T, ch chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(3 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// TestDriverAgainstSimulatorOverPty runs the simulated S/5 and the driver on the two
// ends of a real pty pair at 19200 8E1, with noise, dropped and corrupted frames and a
// pulled interface cable inside the monitor, then pulls the pty itself and plugs a new
// one. Every numeric and wave sample the simulator sent intact must come out of the
// driver with the right MDC code, unit and value.
func TestDriverAgainstSimulatorOverPty(t *testing.T) {
	sc := &physio.Scenario{VTAt: 1500 * time.Millisecond, VTFor: 1500 * time.Millisecond, DesatAt: time.Second, DesatOver: time.Second, DesatTo: 85, NIBPEvery: 3 * time.Second}
	sent := &recorder{}
	sim := NewSimulator(SimConfig{Logger: quietLogger(), Scenario: sc, WavePeriod: 100 * time.Millisecond,
		Faults: Faults{Noise: 0.2, Drop: 0.05, Corrupt: 0.08, PullAt: 2500 * time.Millisecond, PullFor: 700 * time.Millisecond, Seed: 7},
		Sent:   sent.Emit})
	drv := New(Config{Logger: quietLogger(), Resubscribe: 400 * time.Millisecond})

	c := plugCable(t, drv.Serial())
	s := start(c, sim, sent, drv)
	time.Sleep(4500 * time.Millisecond)
	s.stopSim()
	if err := waitErr(t, s.simErr, "simulator"); !errors.Is(err, context.Canceled) {
		t.Fatalf("simulator: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // let the driver read what is in flight
	s.stopDrv()
	if err := waitErr(t, s.drvErr, "driver"); !errors.Is(err, context.Canceled) {
		t.Fatalf("driver: %v", err)
	}
	got := s.got.all()
	waves := compare(t, sent.all(), got)
	for _, code := range []telemetry.Code{telemetry.MDC_ECG_ELEC_POTL_II, telemetry.MDC_PULS_OXIM_PLETH, telemetry.MDC_PRESS_BLD_ART, telemetry.MDC_IMPED_TTHOR, telemetry.MDC_AWAY_CO2} {
		if waves[code] == 0 {
			t.Errorf("no samples of %s", code)
		}
	}
	// The in-monitor cable pull makes it forget the subscription: data after it proves
	// the driver subscribed again.
	var after, gaps, nibp int
	var sawVTOn, sawVTOff bool
	for _, e := range got {
		switch v := e.(type) {
		case *telemetry.Wave:
			if v.ReceiveTime.After(time.Now().Add(-1 * time.Second)) {
				after++
			}
			if v.Gap {
				gaps++
			}
		case *telemetry.Numeric:
			if v.Code == telemetry.MDC_PRESS_BLD_NONINV_SYS {
				nibp++
				if v.Measured.IsZero() {
					t.Error("NIBP without measurement time")
				}
			}
		case *telemetry.Alarm:
			if v.Text == "V TACH" && v.Priority == telemetry.PriorityHigh {
				sawVTOn = sawVTOn || v.On
				sawVTOff = sawVTOff || !v.On
			}
		}
	}
	t.Logf("samples per channel %v, %d numerics/NIBP %d, gaps %d, skipped %v", waves, len(got), nibp, gaps, s.got.skipped)
	if after == 0 {
		t.Error("no waves after the monitor's cable came back: the driver did not resubscribe")
	}
	if gaps == 0 {
		t.Error("corrupted frames lost samples but no wave block was marked as a gap")
	}
	if nibp == 0 {
		t.Error("no NIBP")
	}
	if !sawVTOn || !sawVTOff {
		t.Errorf("V TACH alarm raised %v, cleared %v", sawVTOn, sawVTOff)
	}
	s.got.mu.Lock()
	if s.got.skipped["bad frame: checksum"] == 0 || s.got.skipped["noise"]+s.got.skipped["bad frame: too short"] == 0 {
		t.Errorf("faults not counted: %v", s.got.skipped)
	}
	s.got.mu.Unlock()
}

// TestPtyPulledAndReplugged pulls the pty pair out from under both ends: both must
// return an error (not hang), and on a new pair the driver subscribes afresh.
func TestPtyPulledAndReplugged(t *testing.T) {
	drv := New(Config{Logger: quietLogger()})
	for round := 0; round < 2; round++ {
		sent := &recorder{}
		sim := NewSimulator(SimConfig{Logger: quietLogger(), WavePeriod: 100 * time.Millisecond, Sent: sent.Emit})
		c := plugCable(t, drv.Serial())
		s := start(c, sim, sent, drv)
		time.Sleep(700 * time.Millisecond)
		c.pull()
		if err := waitErr(t, s.drvErr, "driver"); err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: driver returned %v after the cable was pulled", round, err)
		}
		if err := waitErr(t, s.simErr, "simulator"); err == nil {
			t.Fatalf("round %d: simulator returned nil after the cable was pulled", round)
		}
		s.stopSim()
		s.stopDrv()
		got := s.got.all()
		var waves int
		for _, e := range got {
			if _, ok := e.(*telemetry.Wave); ok {
				waves++
			}
		}
		if waves < 3 {
			t.Fatalf("round %d: only %d wave blocks before the pull", round, waves)
		}
		// What arrived is what was sent, in order; the tail in flight at the pull may be
		// missing, so compare the common prefix per channel.
		sentWaves := map[telemetry.Code][]float32{}
		for _, e := range sent.all() {
			if w, ok := e.(*telemetry.Wave); ok {
				sentWaves[w.Code] = append(sentWaves[w.Code], w.Samples...)
			}
		}
		gotWaves := map[telemetry.Code][]float32{}
		for _, e := range got {
			if w, ok := e.(*telemetry.Wave); ok {
				gotWaves[w.Code] = append(gotWaves[w.Code], w.Samples...)
			}
		}
		codes := make([]int, 0)
		for c, g := range gotWaves {
			codes = append(codes, int(c))
			sw := sentWaves[c]
			if len(g) > len(sw) {
				t.Fatalf("round %d: %s received %d samples, sent %d", round, c, len(g), len(sw))
			}
			for i := range g {
				if g[i] != sw[i] {
					t.Fatalf("round %d: %s sample %d = %v, sent %v", round, c, i, g[i], sw[i])
				}
			}
		}
		sort.Ints(codes)
		if len(codes) != len(DefaultWaves) {
			t.Fatalf("round %d: channels %v", round, codes)
		}
	}
}

func TestProbe(t *testing.T) {
	drv := New(Config{})
	if drv.Probe(drv.ProbeRequest()) {
		t.Error("the probe request itself (an echoing line) was taken for a monitor")
	}
	wire, _ := os.ReadFile("testdata/s5_phdb_capture.raw")
	if !drv.Probe(wire[:2000]) {
		t.Error("a real S/5 capture was not recognised")
	}
	noise := make([]byte, 4000)
	for i := range noise {
		noise[i] = byte(i*7 + i/3)
	}
	if drv.Probe(noise) {
		t.Error("noise was taken for a monitor")
	}
}
