package telemetry

import (
	"context"
	"log/slog"

	"lifeline/telemetry/physio"
)

// Protocol is one monitor protocol the box speaks, as one entry of the registry in
// telemetry/protocols: its config name, a line for operators, and how to build its
// driver and its simulator. Every driver package (hl7, nonin, datex, intellivue)
// exports one, built the same way, so a reader who knows one knows all.
type Protocol struct {
	// Name is the config name: "hl7", "nonin", "datex", "intellivue".
	Name string
	// Description says what speaks it, for usage texts and the status page.
	Description string
	// Network reports whether the protocol also runs over TCP (HL7 over MLLP); the
	// others are serial only.
	Network bool
	// NewDriver returns a driver with cfg's defaults filled in.
	NewDriver func(cfg DriverConfig) Driver
	// NewSimulator returns a simulated monitor of this protocol.
	NewSimulator func(cfg SimConfig) Simulator
}

// DriverConfig is what every driver takes; each driver package's own Config adds its
// protocol's settings to it.
type DriverConfig struct {
	Logger *slog.Logger // nil: discard
}

// SimConfig is what every simulator takes; each driver package's own SimConfig adds
// its protocol's settings to it.
type SimConfig struct {
	Logger   *slog.Logger     // nil: discard
	Scenario *physio.Scenario // nil: a stable adult
	Faults   LineFaults       // faults of the line between monitor and box
	// TwelveLead sends all twelve ECG leads where the protocol can (hl7, intellivue);
	// this needs a TCP or fast serial link.
	TwelveLead bool
	// Sent, if set, is called with every event a faithful driver must produce from
	// what left the simulator intact, in the order it left; tests compare against it.
	Sent func(Event)
}

// Simulator plays a monitor on the monitor's end of a port.
type Simulator interface {
	// Run speaks until ctx ends (it returns ctx.Err() then) or the port fails.
	Run(ctx context.Context, port Port) error
}

// DiscardLogger returns l, or a logger that drops everything when l is nil, so that a
// zero config logs nothing instead of failing.
func DiscardLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
