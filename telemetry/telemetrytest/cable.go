package telemetrytest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"lifeline/hardware/serialport"
	"lifeline/internal/peers"
	"lifeline/telemetry"
)

// Cable is a null-modem cable made of a socat pty pair; both ends are opened through
// go.bug.st/serial (hardware/serialport) at the protocol's line setting, so a driver
// and a simulator talk to each other as the box and a monitor do.
type Cable struct {
	Box         *serialport.Port // the box's end, for the driver
	Monitor     *serialport.Port // the monitor's end, for the simulator
	BoxPath     string           // socat's link to the box's pty
	MonitorPath string           // socat's link to the monitor's pty
	cmd         *exec.Cmd
}

// PlugCable starts socat (skipping or failing the test as peers.Need says when it is
// missing) and opens both ends at mode. The cable is pulled at the end of the test.
func PlugCable(t testing.TB, mode telemetry.SerialMode) *Cable {
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
	m := ModeOf(mode)
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
	c := &Cable{cmd: cmd, Box: box, Monitor: moni, BoxPath: a, MonitorPath: b}
	t.Cleanup(c.Pull)
	return c
}

// Pull takes the cable out: socat dies and both ptys vanish under the open ports.
// Pulling twice is harmless.
func (c *Cable) Pull() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
	c.Box.Close()
	c.Monitor.Close()
}

// MonitorSim is a simulated monitor that serves the monitor's end of a cable.
type MonitorSim interface {
	Run(ctx context.Context, port io.ReadWriter) error
}

// DriverRun is the part of telemetry.Driver that Start needs.
type DriverRun interface {
	Run(ctx context.Context, port telemetry.Port, out telemetry.Sink) error
}

// Session is a simulator and a driver running on the two ends of a Cable. Each Run
// method's result arrives on its channel; the stop functions end each side's context.
type Session struct {
	cable   *Cable
	Got     *Sink // what the driver emitted
	SimErr  chan error
	DrvErr  chan error
	StopSim context.CancelFunc
	StopDrv context.CancelFunc
}

// Start runs sim on the monitor's end of c and drv on the box's end, each in a
// goroutine that ends with its context (StopSim, StopDrv) or when the cable is pulled.
func Start(c *Cable, sim MonitorSim, drv DriverRun) *Session {
	r := &Session{cable: c, Got: &Sink{}, SimErr: make(chan error, 1), DrvErr: make(chan error, 1)}
	sctx, scancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithCancel(context.Background())
	r.StopSim, r.StopDrv = scancel, dcancel
	go func() { r.SimErr <- sim.Run(sctx, c.Monitor) }()
	go func() { r.DrvErr <- drv.Run(dctx, c.Box, r.Got) }()
	return r
}

// Finish ends a run the normal way: it stops the simulator, gives the driver drain to
// read what is still in flight, and stops the driver. Both must return
// context.Canceled.
func (s *Session) Finish(t testing.TB, drain time.Duration) {
	t.Helper()
	s.StopSim()
	if err := WaitErr(t, s.SimErr, "simulator"); !errors.Is(err, context.Canceled) {
		t.Fatalf("simulator: %v", err)
	}
	time.Sleep(drain)
	s.StopDrv()
	if err := WaitErr(t, s.DrvErr, "driver"); !errors.Is(err, context.Canceled) {
		t.Fatalf("driver: %v", err)
	}
}

// PullCable pulls the cable out from under both ends. Each must return an error, not
// hang and not report a normal stop; then both contexts are released. label (e.g.
// "round 1") starts the failure messages.
func (s *Session) PullCable(t testing.TB, label string) {
	t.Helper()
	s.cable.Pull()
	if err := WaitErr(t, s.DrvErr, "driver"); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("%s: driver returned %v after the cable was pulled", label, err)
	}
	if err := WaitErr(t, s.SimErr, "simulator"); err == nil {
		t.Fatalf("%s: simulator returned nil after the cable was pulled", label)
	}
	s.StopSim()
	s.StopDrv()
}

// WaitErr returns the error that arrives on ch, failing the test if none arrives
// within 3 s: what is "driver" or "simulator", for the message.
func WaitErr(t testing.TB, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(3 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}
