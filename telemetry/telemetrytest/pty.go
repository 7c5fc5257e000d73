package telemetrytest

import (
	"os"
	"testing"

	"github.com/creack/pty"

	"lifeline/hardware/serialport"
	"lifeline/telemetry"
)

// ModeOf converts a protocol's serial mode for hardware/serialport.
func ModeOf(m telemetry.SerialMode) serialport.Mode {
	return serialport.Mode{Baud: m.Baud, DataBits: m.DataBits, Parity: m.Parity.String()[0], StopBits: m.StopBits}
}

// PtyPair creates a pty and opens its device end through go.bug.st/serial at mode, as the
// box opens a monitor's port; the returned file is the monitor's end of the "cable".
// Both are closed at the end of the test.
func PtyPair(t testing.TB, mode telemetry.SerialMode) (*serialport.Port, *os.File) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	name := slave.Name()
	// Keep the slave open until the serial port holds it, so the pty does not hang up.
	p, err := serialport.Open(name, ModeOf(mode))
	slave.Close()
	if err != nil {
		master.Close()
		t.Fatalf("open %s through go.bug.st/serial: %v", name, err)
	}
	t.Cleanup(func() { p.Close(); master.Close() })
	return p, master
}
