package serialport

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"lifeline/internal/service"
)

// Device is the serial device of one role on the box (the GNSS receiver, the modem's
// AT port): opened at Path, or, once Path is gone, wherever its USB adapter appears
// again under another name.
type Device struct {
	Role string // names the device in errors and logs, e.g. "GNSS receiver"
	Path string
	Mode Mode
	// USB is the adapter's identity; when zero it is learnt at the first open.
	USB USBID
	// Lister lists the serial ports to search; nil means Ports.
	Lister Lister

	mu sync.Mutex
}

// reopenPause is how long a missing or failed device waits before it is looked for
// again: short enough that a re-plugged cable is back within a report or two.
const reopenPause = time.Second

// Open opens the device at Path, or where its USB identity is now.
func (d *Device) Open() (*Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := d.Lister
	if list == nil {
		list = Ports
	}
	path := d.Path
	if _, err := os.Stat(path); err != nil && !d.USB.IsZero() {
		found, ferr := Find(list, d.USB)
		if ferr != nil {
			return nil, fmt.Errorf("%s %s gone and not found again: %w", d.Role, path, ferr)
		}
		path = found
	}
	p, err := Open(path, d.Mode)
	if err != nil {
		return nil, err
	}
	if d.USB.IsZero() {
		if id, err := Identify(list, path); err == nil && !id.IsZero() {
			d.USB = id // remembered, to find it after an unplug
		}
	}
	return p, nil
}

// Serve opens the device and runs use on it until ctx ends. A device that is missing,
// unplugged or fails is reported through h and looked for again; it is never fatal,
// because the box must keep its other work going without it.
func (d *Device) Serve(ctx context.Context, h *service.Health, log *slog.Logger, use func(*Port) error) {
	for ctx.Err() == nil {
		port, err := d.Open()
		if err != nil {
			h.Degraded(d.Role+" not available", err)
			log.Warn("cannot open the "+d.Role, "err", err)
			pause(ctx, reopenPause)
			continue
		}
		err = use(port)
		port.Close()
		if ctx.Err() != nil {
			return
		}
		h.Degraded(d.Role+" lost: "+port.Path, err)
		log.Warn(d.Role+" lost; looking for it again", "port", port.Path, "err", err)
		pause(ctx, reopenPause)
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
