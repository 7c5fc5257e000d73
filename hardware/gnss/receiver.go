package gnss

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"lifeline/hardware/serialport"
	"lifeline/internal/service"
)

// Config configures a Receiver. The zero value of every field but Port means its
// default.
type Config struct {
	// Port is the device path (/dev/ttyACM0, /dev/serial/by-id/…, a pty).
	Port string
	// USB, if set, is the adapter's identity: when Port is gone (unplugged, came back
	// under another name) the receiver is found again by it. When empty it is learnt
	// from Port at the first open.
	USB serialport.USBID
	// Baud is the receiver's rate: 9600 for most u-blox and Quectel L76 modules, 38400
	// or 115200 for multi-band ones. Default 9600.
	Baud int
	// OnFix is called with every epoch (outside locks; keep it short).
	OnFix func(Fix)
	Log   *slog.Logger
	// Lister lists serial ports for re-finding by USB identity (tests substitute it).
	Lister serialport.Lister
	// Now is the box's clock (tests substitute it); default time.Now.
	Now func() time.Time
}

// Receiver reads a GNSS receiver on a serial port and keeps its Intake current. It
// survives the receiver being unplugged and plugged back in.
type Receiver struct {
	*Intake
	cfg    Config
	device *serialport.Device
}

// New returns a Receiver; call Run.
func New(cfg Config) *Receiver {
	if cfg.Baud <= 0 {
		cfg.Baud = 9600
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Lister == nil {
		cfg.Lister = serialport.Ports
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Receiver{Intake: NewIntake(cfg.Log, cfg.OnFix), cfg: cfg, device: &serialport.Device{
		Role: "GNSS receiver", Path: cfg.Port, Mode: serialport.Mode{Baud: cfg.Baud}, USB: cfg.USB, Lister: cfg.Lister,
	}}
}

// Status is the receiver's entry in the box's /api/v1/status details.
type Status struct {
	Port     string      `json:"port"`
	State    State       `json:"state"`
	Fix      *Fix        `json:"fix,omitempty"`
	GNSSTime *time.Time  `json:"gnss_time,omitempty"`
	Counts   IntakeStats `json:"counts"`
}

// Status reports the position state for the status page.
func (r *Receiver) Status() Status {
	now := r.cfg.Now()
	st, f := r.State(now)
	s := Status{Port: r.cfg.Port, State: st, Counts: r.Stats()}
	if f.Received.After(time.Time{}) {
		s.Fix = &f
	}
	if t, ok := r.Time(now); ok {
		s.GNSSTime = &t
	}
	return s
}

// Run reads the receiver until ctx ends, reporting through h: ready with a fix,
// degraded while searching, lost, silent or unplugged. It returns nil when ctx ends;
// a missing or failing port is retried every second, never fatal.
func (r *Receiver) Run(ctx context.Context, h *service.Health) error {
	r.device.Serve(ctx, h, r.cfg.Log, func(p *serialport.Port) error {
		// A pause this long between bytes ends the receiver's burst: the epoch is complete.
		if err := p.SetReadTimeout(100 * time.Millisecond); err != nil {
			return err
		}
		return r.read(ctx, p, h)
	})
	return nil
}

// read reads lines until the port fails or ctx ends.
func (r *Receiver) read(ctx context.Context, p *serialport.Port, h *service.Health) error {
	stop := context.AfterFunc(ctx, func() { p.Close() })
	defer stop()
	buf := make([]byte, 512)
	var line []byte
	lastHealth := time.Time{}
	for ctx.Err() == nil {
		n, err := p.Read(buf)
		now := r.cfg.Now()
		if err != nil {
			return err
		}
		if n == 0 {
			r.Flush(now)
		}
		for _, b := range buf[:n] {
			switch {
			case b == '\n':
				r.Line(string(line), now)
				line = line[:0]
			case len(line) > MaxSentence:
				// keep the length so Line counts it as too long, drop the rest
			default:
				line = append(line, b)
			}
		}
		if now.Sub(lastHealth) >= 500*time.Millisecond {
			lastHealth = now
			r.report(h, now, p.Path)
		}
	}
	return ctx.Err()
}

func (r *Receiver) report(h *service.Health, now time.Time, path string) {
	st, f := r.State(now)
	switch st {
	case Fixed:
		h.Ready(f.String())
	case Searching:
		h.Degraded(fmt.Sprintf("searching for satellites (%d in view) on %s", f.InView, path), nil)
	case Lost:
		h.Degraded(fmt.Sprintf("fix lost for more than %s (%d satellites in view)", StaleAfter, f.InView), errors.New("no valid GNSS fix"))
	case Silent:
		h.Degraded(fmt.Sprintf("no NMEA from %s for %s: check the cable and the baud rate (%d)", path, StaleAfter, r.cfg.Baud), errors.New("GNSS receiver silent"))
	}
}
