package telemetry

// This file is the contract between the monitor reader (telemetry/monitor) and the
// protocol drivers. Every driver package (telemetry/hl7, nonin, datex, intellivue)
// implements Driver and registers itself as a Protocol (protocol.go) in the one list in
// telemetry/protocols. Keep it small; extend it only together with all drivers.

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Parity of a serial line.
type Parity uint8

// Parities.
const (
	ParityNone Parity = iota
	ParityOdd
	ParityEven
)

func (p Parity) String() string {
	switch p {
	case ParityNone:
		return "N"
	case ParityOdd:
		return "O"
	case ParityEven:
		return "E"
	}
	return "?"
}

// SerialMode is the line setting a protocol needs, e.g. {19200, 8, ParityEven, 1} for
// Datex-Ohmeda S/5 ("19200 8E1").
type SerialMode struct {
	Baud     int
	DataBits int // 5..8
	Parity   Parity
	StopBits int // 1 or 2
}

func (m SerialMode) String() string {
	return fmt.Sprintf("%d %d%s%d", m.Baud, m.DataBits, m.Parity, m.StopBits)
}

// Port is an opened serial line or network stream a driver speaks on. The serial ports
// of hardware/serialport and the MLLP TCP adapter satisfy it.
type Port interface {
	io.ReadWriter
	// SetReadTimeout bounds each following Read: after d without data Read returns 0, nil
	// (as go.bug.st/serial does), so a driver can run its timers (polls, keep-alives)
	// between reads without a goroutine. d <= 0 means block until data or an error.
	SetReadTimeout(d time.Duration) error
}

// Sink receives what a driver decodes. The reader implements it; calls come from the
// driver's Run goroutine only, one at a time.
type Sink interface {
	// Emit hands over one event. Emit does not block on slow consumers.
	Emit(Event)
	// Frame notes one well-formed protocol frame/message (even one carrying no data), so
	// the reader can tell a live but quiet monitor from a silent one.
	Frame()
	// Skipped counts n bytes thrown away, with a short reason ("bad checksum", "noise",
	// "oversized frame"), so an operator sees a bad cable in the counters.
	Skipped(n int, reason string)
}

// Driver speaks one monitor protocol.
//
// Run speaks the protocol on an opened port — including the box's half of any handshake,
// polls and keep-alives — and emits events until ctx ends or the port fails. It returns
// ctx.Err() when ctx ended and otherwise the port error, wrapped to say where. The reader
// closes the port when ctx ends, which makes a blocked Read or Write return, so Run must
// treat an error after ctx is done as the normal end. Malformed input is never an error
// return: it is skipped (Sink.Skipped), logged, and decoding continues. Run may be called
// again on a new port after it returned (reconnect), so per-connection state lives in Run.
type Driver interface {
	// Protocol is the config name: "hl7", "nonin", "datex", "intellivue".
	Protocol() string
	// Serial is the line setting the protocol uses on a serial port.
	Serial() SerialMode
	// Run decodes the protocol on port until ctx ends or the port fails.
	Run(ctx context.Context, port Port, out Sink) error
	Detector
}

// Detector lets the reader auto-detect which protocol a port speaks (protocol = "auto").
// For each candidate driver the reader opens the port at Serial(), writes ProbeRequest()
// if it is not empty, reads for up to ProbeWindow and asks Probe about what it read.
type Detector interface {
	// ProbeRequest returns bytes that make a monitor that only answers requests (Datex,
	// IntelliVue) talk; nil for monitors that stream on their own (Nonin, most HL7).
	// It must be harmless to a monitor of another protocol.
	ProbeRequest() []byte
	// ProbeWindow is how long to listen after the request (e.g. 1.5 s for Nonin, which
	// sends 75 frames a second; up to 3 s for HL7, which may send once a second).
	ProbeWindow() time.Duration
	// Probe reports whether data, read from the port at this protocol's serial mode,
	// contains at least one well-formed frame of this protocol. It must not be fooled by
	// noise: require a checksum or a full framing match.
	Probe(data []byte) bool
}

// SinkFunc adapts a function receiving events to a Sink that ignores frame and skip
// notes; handy in tests and tools.
type SinkFunc func(Event)

// Emit implements Sink.
func (f SinkFunc) Emit(e Event) { f(e) }

// Frame implements Sink.
func (SinkFunc) Frame() {}

// Skipped implements Sink.
func (SinkFunc) Skipped(int, string) {}
