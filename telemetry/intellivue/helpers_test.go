package intellivue

// Test helpers shared in spirit with telemetry/datex: a socat null-modem cable opened
// through go.bug.st/serial, a recording sink, and the sent-versus-received comparison.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lifeline/hardware/serialport"
	"lifeline/internal/peers"
	"lifeline/telemetry"
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
	code     telemetry.Code
	value    float64
	unit     string
	at       int64
	measured int64
	invalid  bool
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
				nums[numKey{v.Code, v.Value, v.Unit, v.MonitorTime.UnixMilli(), v.Measured.UnixMilli(), v.Invalid}]++
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
