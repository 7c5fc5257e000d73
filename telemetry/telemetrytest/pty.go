package telemetrytest

import (
	"fmt"
	"os"
	"syscall"
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
	master, err = pollable(master)
	if err != nil {
		t.Fatalf("pty master: %v", err)
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

// pollable returns the pty master as a non-blocking file registered with the runtime
// poller, so that read and write deadlines work on it (the simulator side needs them).
func pollable(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}
