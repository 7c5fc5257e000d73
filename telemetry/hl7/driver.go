package hl7

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"lifeline/telemetry"
)

// Config tunes the driver. The zero value reads 115200 8N1 and takes monitor
// timestamps without a zone as the box's local time.
type Config struct {
	Logger *slog.Logger // nil: discard
	// Mode is the serial setting; the zero value means 115200 8N1, what most monitors'
	// HL7 serial outputs default to. Over TCP it is unused.
	Mode telemetry.SerialMode
	// Location is the zone of monitor timestamps sent without one (nil: the box's).
	Location *time.Location
}

// Driver reads HL7 v2 over MLLP from a serial port or a TCP connection. It implements
// telemetry.Driver.
type Driver struct {
	cfg Config
	log *slog.Logger

	acks atomic.Uint64 // ACK control ids
}

// New returns a driver with cfg's defaults filled in.
func New(cfg Config) *Driver {
	if cfg.Mode.Baud == 0 {
		cfg.Mode = telemetry.SerialMode{Baud: 115200, DataBits: 8, Parity: telemetry.ParityNone, StopBits: 1}
	}
	return &Driver{cfg: cfg, log: telemetry.DiscardLogger(cfg.Logger).With("protocol", "hl7")}
}

// Protocol implements telemetry.Driver.
func (*Driver) Protocol() string { return "hl7" }

// Serial implements telemetry.Driver.
func (d *Driver) Serial() telemetry.SerialMode { return d.cfg.Mode }

// ProbeRequest implements telemetry.Detector: HL7 monitors send unasked.
func (*Driver) ProbeRequest() []byte { return nil }

// ProbeWindow implements telemetry.Detector: monitors report about once a second.
func (*Driver) ProbeWindow() time.Duration { return 2500 * time.Millisecond }

// Probe implements telemetry.Detector: an MLLP start block followed by a header segment.
func (*Driver) Probe(data []byte) bool {
	return bytes.Contains(data, []byte("\x0bMSH|")) || bytes.Contains(data, []byte("\x0bMSH^"))
}

// Run implements telemetry.Driver.
func (d *Driver) Run(ctx context.Context, port telemetry.Port, out telemetry.Sink) error {
	log := d.log
	if err := port.SetReadTimeout(250 * time.Millisecond); err != nil {
		return fmt.Errorf("hl7: set read timeout: %w", err)
	}
	var df Deframer
	buf := make([]byte, 32<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := port.Read(buf)
		if n > 0 {
			now := time.Now()
			msgs, skipped, ferr := df.Feed(buf[:n])
			if skipped > 0 {
				out.Skipped(skipped, "hl7: bytes outside MLLP frames")
			}
			if ferr != nil {
				log.Warn("hl7: discarded an oversized MLLP frame", "err", ferr)
			}
			for _, raw := range msgs {
				if werr := d.handle(raw, now, port, out); werr != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					return werr
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("hl7: %w", err)
		}
	}
}

// handle decodes one framed message and acknowledges it; only a failed ACK write is
// returned (the link is broken).
func (d *Driver) handle(raw []byte, now time.Time, port telemetry.Port, out telemetry.Sink) error {
	log := d.log
	m, err := parseBounded(raw)
	if err != nil {
		out.Skipped(len(raw)+2, "hl7: unparseable message")
		log.Warn("hl7: unparseable message skipped", "err", err, "bytes", len(raw))
		// If at least the header is readable, tell the monitor it was not accepted.
		if nl := bytes.IndexAny(raw, "\r\n"); nl > 0 {
			if hm, herr := parseBounded(raw[:nl]); herr == nil && WantsAckOnError(hm) {
				return d.ack(hm, "AE", err.Error(), now, port)
			}
		}
		return nil
	}
	out.Frame()
	res := Decode(m, now, d.cfg.Location)
	if res.Ignored > 0 {
		log.Debug("hl7: observations not mapped", "count", res.Ignored, "first", res.FirstProb, "control_id", m.ControlID())
	}
	for _, ev := range res.Events {
		out.Emit(ev)
	}
	if WantsAck(m) {
		return d.ack(m, "AA", "", now, port)
	}
	return nil
}

// WantsAckOnError reports whether the sender wants to hear about rejected messages.
func WantsAckOnError(m *Message) bool {
	return WantsAck(m) || strings.EqualFold(m.MSH().Value(15), "ER") || strings.EqualFold(m.MSH().Value(16), "ER")
}

func (d *Driver) ack(m *Message, code, text string, now time.Time, port telemetry.Port) error {
	id := "L" + strconv.FormatUint(d.acks.Add(1), 10)
	if _, err := port.Write(Frame(nil, EncodeACK(m, code, text, now, id))); err != nil {
		return fmt.Errorf("hl7: send ACK for %s: %w", m.ControlID(), err)
	}
	return nil
}
