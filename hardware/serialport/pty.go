package serialport

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/creack/pty"
)

// SimulatedLine is a simulated device's end of a pseudo-terminal: the device reads
// and writes it, and the box opens Path as its serial port, as it would a USB adapter.
type SimulatedLine struct {
	io.ReadWriter
	// Path is the terminal the box opens, e.g. /dev/pts/7.
	Path    string
	closers []io.Closer
}

// OpenSimulatedLine creates a pseudo-terminal pair for a simulated device (the demo's
// GNSS receiver and modem, `lifeline sim gnss|modem`). A write that nobody reads for a
// second is dropped rather than blocking the device, as bytes on a real cable are lost
// when nothing listens.
func OpenSimulatedLine() (*SimulatedLine, error) {
	master, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("create pty: %w", err)
	}
	// A duplicate of the master on the runtime poller, so that writes get deadlines.
	fd, err := syscall.Dup(int(master.Fd()))
	if err == nil {
		err = syscall.SetNonblock(fd, true)
	}
	if err != nil {
		master.Close()
		tty.Close()
		return nil, fmt.Errorf("pty: %w", err)
	}
	m := os.NewFile(uintptr(fd), master.Name())
	return &SimulatedLine{ReadWriter: droppingLine{m}, Path: tty.Name(), closers: []io.Closer{m, master, tty}}, nil
}

// Close releases both ends.
func (l *SimulatedLine) Close() error {
	var errs []error
	for _, c := range l.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

type droppingLine struct{ f *os.File }

func (d droppingLine) Read(b []byte) (int, error) { return d.f.Read(b) }

func (d droppingLine) Write(b []byte) (int, error) {
	d.f.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := d.f.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return len(b), nil // nobody reads the line: the bytes are lost, as on a real one
	}
	return n, err
}
