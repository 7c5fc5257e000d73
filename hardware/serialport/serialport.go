// Package serialport opens serial devices (USB-serial adapters, on-board UARTs, ptys) for
// the box's device drivers through go.bug.st/serial, bounds every write with a deadline,
// and finds a USB adapter again by its VID/PID/serial number after it was unplugged and
// came back under another name.
package serialport

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"
)

// Mode is a line setting: baud rate, data bits, parity ('N', 'E', 'O') and stop bits.
type Mode struct {
	Baud     int
	DataBits int
	Parity   byte
	StopBits int
}

func (m Mode) String() string {
	return fmt.Sprintf("%d %d%c%d", m.Baud, m.DataBits, m.Parity, m.StopBits)
}

func (m Mode) serial() (*serial.Mode, error) {
	sm := &serial.Mode{BaudRate: m.Baud, DataBits: m.DataBits}
	if sm.DataBits == 0 {
		sm.DataBits = 8
	}
	switch m.Parity {
	case 'N', 'n', 0:
		sm.Parity = serial.NoParity
	case 'E', 'e':
		sm.Parity = serial.EvenParity
	case 'O', 'o':
		sm.Parity = serial.OddParity
	default:
		return nil, fmt.Errorf("parity %q: want N, E or O", m.Parity)
	}
	switch m.StopBits {
	case 0, 1:
		sm.StopBits = serial.OneStopBit
	case 2:
		sm.StopBits = serial.TwoStopBits
	default:
		return nil, fmt.Errorf("stop bits %d: want 1 or 2", m.StopBits)
	}
	if m.Baud <= 0 {
		return nil, fmt.Errorf("baud rate %d", m.Baud)
	}
	return sm, nil
}

// ErrWriteTimeout is returned by Write when the device did not take the bytes within the
// write timeout (a pty nobody reads, a stuck adapter). The port is unusable afterwards.
var ErrWriteTimeout = errors.New("serial write timed out")

// ErrUnsupported wraps modem-line errors on devices without modem lines (ptys): callers
// treat it as "not supported here", not as a failure of the port.
var ErrUnsupported = errors.New("not supported by this device")

// Port is an open serial device.
type Port struct {
	Path string // as given to Open
	Mode Mode
	// WriteTimeout bounds every Write; 0 means 2 s.
	WriteTimeout time.Duration

	sp serial.Port
	// w is a second, non-blocking descriptor of the same device used for writes, because
	// go.bug.st/serial writes block in the kernel with no way to time out; through the
	// runtime poller a write gets a real deadline. nil when it could not be opened, then
	// writes go through sp without a deadline (logged by the caller via WriteBounded).
	w *os.File
}

// Open opens path at mode. The device's own name is resolved through symlinks (socat's
// link=, udev's /dev/serial/by-id) only for error messages; the port is opened by path.
func Open(path string, mode Mode) (*Port, error) {
	sm, err := mode.serial()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// The write descriptor first: go.bug.st/serial puts the tty in exclusive mode.
	w, werr := os.OpenFile(path, os.O_WRONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	sp, err := serial.Open(path, sm)
	if err != nil {
		if w != nil {
			w.Close()
		}
		return nil, fmt.Errorf("open %s at %s: %w", path, mode, err)
	}
	p := &Port{Path: path, Mode: mode, sp: sp}
	if werr == nil {
		if err := w.SetWriteDeadline(time.Time{}); err == nil {
			p.w = w
		} else {
			w.Close() // not pollable: fall back to the blocking path
		}
	}
	return p, nil
}

// Read reads from the device. After SetReadTimeout(d) a Read with no data for d returns
// 0, nil. A device that disappeared (USB unplugged, pty peer closed) returns an error.
func (p *Port) Read(b []byte) (int, error) {
	n, err := p.sp.Read(b)
	if err != nil {
		return n, fmt.Errorf("read %s: %w", p.Path, err)
	}
	return n, nil
}

// SetReadTimeout bounds each following Read; d <= 0 blocks until data or an error.
func (p *Port) SetReadTimeout(d time.Duration) error {
	if d <= 0 {
		d = serial.NoTimeout
	}
	return p.sp.SetReadTimeout(d)
}

// Write writes b, failing with ErrWriteTimeout if the device does not take it within
// WriteTimeout.
func (p *Port) Write(b []byte) (int, error) {
	if p.w == nil {
		n, err := p.sp.Write(b)
		if err != nil {
			return n, fmt.Errorf("write %s: %w", p.Path, err)
		}
		return n, nil
	}
	to := p.WriteTimeout
	if to <= 0 {
		to = 2 * time.Second
	}
	if err := p.w.SetWriteDeadline(time.Now().Add(to)); err != nil {
		return 0, fmt.Errorf("write %s: %w", p.Path, err)
	}
	n, err := p.w.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, fmt.Errorf("write %s: %d of %d bytes after %v: %w", p.Path, n, len(b), to, ErrWriteTimeout)
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", p.Path, err)
	}
	return n, nil
}

// SetLines sets DTR and RTS. Some devices (optically isolated monitor interfaces) take
// their power from these lines. On a pty this returns an error wrapping ErrUnsupported.
func (p *Port) SetLines(dtr, rts bool) error {
	if err := p.sp.SetDTR(dtr); err != nil {
		return fmt.Errorf("set DTR on %s: %w (%v)", p.Path, ErrUnsupported, err)
	}
	if err := p.sp.SetRTS(rts); err != nil {
		return fmt.Errorf("set RTS on %s: %w (%v)", p.Path, ErrUnsupported, err)
	}
	return nil
}

// Close closes the device; a blocked Read returns.
func (p *Port) Close() error {
	var werr error
	if p.w != nil {
		werr = p.w.Close()
	}
	return errors.Join(p.sp.Close(), werr)
}

// USBID identifies a USB-serial adapter across unplug/replug.
type USBID struct {
	VID, PID, Serial string
}

// IsZero reports whether the identity is unknown (not a USB device).
func (u USBID) IsZero() bool { return u.VID == "" && u.PID == "" }

func (u USBID) String() string {
	if u.Serial != "" {
		return fmt.Sprintf("%s:%s serial %s", u.VID, u.PID, u.Serial)
	}
	return u.VID + ":" + u.PID
}

// Lister lists serial ports; Ports is the real one, tests substitute theirs.
type Lister func() ([]*enumerator.PortDetails, error)

// Ports lists the machine's serial ports with their USB details.
func Ports() ([]*enumerator.PortDetails, error) { return enumerator.GetDetailedPortsList() }

// Identify returns the USB identity of the device at path (following symlinks such as
// /dev/serial/by-id/...), or a zero USBID when it is not a USB device.
func Identify(list Lister, path string) (USBID, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return USBID{}, fmt.Errorf("identify %s: %w", path, err)
	}
	ports, err := list()
	if err != nil {
		return USBID{}, fmt.Errorf("identify %s: list ports: %w", path, err)
	}
	for _, d := range ports {
		if d.Name == real || d.Name == path {
			if !d.IsUSB {
				return USBID{}, nil
			}
			return USBID{VID: strings.ToLower(d.VID), PID: strings.ToLower(d.PID), Serial: d.SerialNumber}, nil
		}
	}
	return USBID{}, nil
}

// ErrNotFound means no present device matches.
var ErrNotFound = fs.ErrNotExist

// Find returns the path of the present device with identity id. With a serial number
// the match is exact; without one the first adapter with that VID:PID is taken, which
// is ambiguous when two identical adapters are plugged in, so an ambiguous match is an
// error instead of a guess.
func Find(list Lister, id USBID) (string, error) {
	if id.IsZero() {
		return "", fmt.Errorf("find serial device: no USB identity to search for")
	}
	ports, err := list()
	if err != nil {
		return "", fmt.Errorf("find %s: list ports: %w", id, err)
	}
	var found []string
	for _, d := range ports {
		if !d.IsUSB || !strings.EqualFold(d.VID, id.VID) || !strings.EqualFold(d.PID, id.PID) {
			continue
		}
		if id.Serial != "" && d.SerialNumber != id.Serial {
			continue
		}
		found = append(found, d.Name)
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("find %s: %w", id, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("find %s: %d adapters match (%s); set the port by serial number", id, len(found), strings.Join(found, ", "))
}
