package nonin

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"lifeline/telemetry"
)

// Config tunes the driver. The zero value reads data format 7.
type Config struct {
	Logger *slog.Logger // nil: discard
	Format int          // Format7 (default) or Format2
}

// Driver reads a Nonin oximeter. It implements telemetry.Driver.
type Driver struct {
	cfg Config
	log *slog.Logger
}

// New returns a driver with cfg's defaults filled in.
func New(cfg Config) *Driver {
	if cfg.Format != Format2 {
		cfg.Format = Format7
	}
	return &Driver{cfg: cfg, log: telemetry.DiscardLogger(cfg.Logger).With("protocol", "nonin")}
}

// Protocol implements telemetry.Driver.
func (*Driver) Protocol() string { return "nonin" }

// Serial implements telemetry.Driver: 9600 8N1.
func (*Driver) Serial() telemetry.SerialMode {
	return telemetry.SerialMode{Baud: 9600, DataBits: 8, Parity: telemetry.ParityNone, StopBits: 1}
}

// ProbeRequest implements telemetry.Detector: the oximeter streams unasked.
func (*Driver) ProbeRequest() []byte { return nil }

// ProbeWindow implements telemetry.Detector: 75 frames a second, so 1 s is plenty.
func (*Driver) ProbeWindow() time.Duration { return time.Second }

// Probe implements telemetry.Detector.
func (d *Driver) Probe(data []byte) bool { return Probe(data, d.cfg.Format) }

// Run implements telemetry.Driver.
func (d *Driver) Run(ctx context.Context, port telemetry.Port, out telemetry.Sink) error {
	dec := NewDecoder(d.cfg.Format, d.log)
	// The read timeout only lets Run notice ctx; data arrives every 13 ms.
	if err := port.SetReadTimeout(250 * time.Millisecond); err != nil {
		return fmt.Errorf("nonin: set read timeout: %w", err)
	}
	buf := make([]byte, 512)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := port.Read(buf)
		if n > 0 {
			dec.Feed(buf[:n], time.Now(), out)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("nonin: %w", err)
		}
	}
}
