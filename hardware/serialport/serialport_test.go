package serialport

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.bug.st/serial/enumerator"
)

// openPair opens a pty through go.bug.st/serial (the slave end, as a device) and returns
// the master end standing in for the far device.
func openPair(t *testing.T, mode Mode) (*Port, *os.File) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	name := slave.Name()
	slave.Close()
	p, err := Open(name, mode)
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); master.Close() })
	return p, master
}

func TestReadWriteThroughPty(t *testing.T) {
	p, far := openPair(t, Mode{Baud: 9600, DataBits: 8, Parity: 'N', StopBits: 1})
	if _, err := far.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	p.SetReadTimeout(2 * time.Second)
	buf := make([]byte, 16)
	n, err := io.ReadAtLeast(p, buf, 5)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if _, err := p.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(far, got); err != nil || string(got) != "world" {
		t.Fatalf("far read %q, %v", got, err)
	}
	// Read timeout returns 0, nil so drivers can run their timers.
	p.SetReadTimeout(50 * time.Millisecond)
	if n, err := p.Read(buf); n != 0 || err != nil {
		t.Fatalf("idle read = %d, %v", n, err)
	}
	// Modem lines do not exist on a pty: the error says unsupported, not broken.
	if err := p.SetLines(true, true); err != nil && !errors.Is(err, ErrUnsupported) {
		t.Fatalf("SetLines on pty: %v", err)
	}
}

func TestWriteNeverBlocksForever(t *testing.T) {
	p, _ := openPair(t, Mode{Baud: 115200, Parity: 'N'})
	p.WriteTimeout = 200 * time.Millisecond
	chunk := bytes.Repeat([]byte{0x55}, 4096)
	start := time.Now()
	var err error
	for i := 0; i < 1000 && err == nil; i++ { // nobody reads the far end: the pty buffer fills
		_, err = p.Write(chunk)
	}
	if !errors.Is(err, ErrWriteTimeout) {
		t.Fatalf("write to a full pty: %v, want ErrWriteTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestReadFailsWhenDeviceGoes(t *testing.T) {
	p, far := openPair(t, Mode{Baud: 19200, Parity: 'E'})
	far.Close() // the cable is pulled
	p.SetReadTimeout(time.Second)
	buf := make([]byte, 8)
	var err error
	for i := 0; i < 5 && err == nil; i++ {
		_, err = p.Read(buf)
	}
	if err == nil {
		t.Fatal("read kept succeeding after the far end closed")
	}
}

func TestFindByUSBIdentity(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "ttyUSB3") // stands in for the device node
	os.WriteFile(dev, nil, 0o600)
	link := filepath.Join(dir, "by-id-monitor")
	os.Symlink(dev, link)
	list := func(ports ...*enumerator.PortDetails) Lister {
		return func() ([]*enumerator.PortDetails, error) { return ports, nil }
	}
	ftdi := &enumerator.PortDetails{Name: dev, IsUSB: true, VID: "0403", PID: "6001", SerialNumber: "A1B2"}
	id, err := Identify(list(ftdi, &enumerator.PortDetails{Name: "/dev/ttyS0"}), link)
	if err != nil || id != (USBID{"0403", "6001", "A1B2"}) {
		t.Fatalf("Identify = %v, %v", id, err)
	}
	// Unplugged: not found. Replugged as ttyUSB7: found there.
	if _, err := Find(list(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find with nothing plugged: %v", err)
	}
	moved := *ftdi
	moved.Name = "/dev/ttyUSB7"
	other := &enumerator.PortDetails{Name: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6001", SerialNumber: "ZZZ"}
	if got, err := Find(list(other, &moved), id); err != nil || got != "/dev/ttyUSB7" {
		t.Fatalf("Find after replug = %q, %v", got, err)
	}
	// Without a serial number two identical adapters are ambiguous: refuse to guess.
	if _, err := Find(list(other, &moved), USBID{VID: "0403", PID: "6001"}); err == nil {
		t.Fatal("ambiguous VID:PID match accepted")
	}
}
