package telemetrytest

import (
	"context"
	"errors"
	"testing"
	"time"

	"lifeline/hardware/serialport"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
	"lifeline/telemetry"
)

// ModeOf converts a protocol's serial mode for hardware/serialport.
func ModeOf(m telemetry.SerialMode) serialport.Mode {
	return serialport.Mode{Baud: m.Baud, DataBits: m.DataBits, Parity: m.Parity.String()[0], StopBits: m.StopBits}
}

// Cable is a null-modem cable (the socat pty pair of internal/peers) with both ends
// opened through go.bug.st/serial (hardware/serialport) at the protocol's line setting,
// so a driver and a simulator talk to each other as the box and a monitor do.
type Cable struct {
	Box     *serialport.Port // the box's end, for the driver
	Monitor *serialport.Port // the monitor's end, for the simulator
	pair    *peers.Cable
}

// PlugCable plugs a socat cable (skipping or failing the test as peers.Need says when
// socat is missing) and opens both ends at mode. The cable is pulled at the end of the
// test.
func PlugCable(t testing.TB, mode telemetry.SerialMode) *Cable {
	t.Helper()
	pair := peers.PlugCable(t)
	m := ModeOf(mode)
	box, err := serialport.Open(pair.BoxEnd, m)
	if err != nil {
		t.Fatalf("open the box's end of the cable: %v", err)
	}
	moni, err := serialport.Open(pair.DeviceEnd, m)
	if err != nil {
		box.Close()
		t.Fatalf("open the monitor's end of the cable: %v", err)
	}
	c := &Cable{Box: box, Monitor: moni, pair: pair}
	t.Cleanup(c.Pull)
	return c
}

// Pull takes the cable out: socat dies and both ptys vanish under the open ports.
// Pulling twice is harmless.
func (c *Cable) Pull() {
	c.pair.Pull()
	c.Box.Close()
	c.Monitor.Close()
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
func Start(c *Cable, sim telemetry.Simulator, drv telemetry.Driver) *Session {
	r := &Session{cable: c, Got: &Sink{}, SimErr: make(chan error, 1), DrvErr: make(chan error, 1)}
	sctx, scancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithCancel(context.Background())
	r.StopSim, r.StopDrv = scancel, dcancel
	go func() { r.SimErr <- sim.Run(sctx, c.Monitor) }()
	go func() { r.DrvErr <- drv.Run(dctx, c.Box, r.Got) }()
	return r
}

// drainTimeout bounds how long a driver may take to read what is still on the line
// once the simulator stopped: generous, as a loaded machine is slow, and only spent
// when something is really lost.
const drainTimeout = 15 * time.Second

// Finish ends a run the normal way: it stops the simulator, lets the driver read until
// delivered holds (everything in flight has arrived) or drainTimeout passes, and stops
// the driver. Both must return context.Canceled. A drain that does not complete is not
// fatal here: the caller's comparison then names what is missing.
func (s *Session) Finish(t testing.TB, delivered func() bool) {
	t.Helper()
	s.StopSim()
	if err := WaitErr(t, s.SimErr, "simulator"); !errors.Is(err, context.Canceled) {
		t.Fatalf("simulator: %v", err)
	}
	if wait.Until(drainTimeout, delivered) != nil {
		t.Logf("the driver had not caught up with the simulator %s after it stopped", drainTimeout)
	}
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
// within 10 s: what is "driver" or "simulator", for the message.
func WaitErr(t testing.TB, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return within 10 s", what)
		return nil
	}
}
