// Package protocols is the one list of monitor protocols the box speaks. The config
// check, the monitor reader's auto-detection, the self-test and `lifeline sim monitor`
// all read it, so a new protocol is added here and nowhere else.
package protocols

import (
	"log/slog"

	"lifeline/telemetry"
	"lifeline/telemetry/datex"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/intellivue"
	"lifeline/telemetry/nonin"
)

// Auto is the protocol setting that makes the reader detect the protocol.
const Auto = "auto"

// all is in detection order: the monitors that stream unasked first (their probe sends
// nothing), then those that must be asked.
var all = []telemetry.Protocol{hl7.Protocol, nonin.Protocol, datex.Protocol, intellivue.Protocol}

// All returns every protocol, in detection order.
func All() []telemetry.Protocol { return append([]telemetry.Protocol(nil), all...) }

// Names returns the config names of every protocol, in detection order.
func Names() []string {
	names := make([]string, len(all))
	for i, p := range all {
		names[i] = p.Name
	}
	return names
}

// NetworkNames returns the config names of the protocols that also run over TCP.
func NetworkNames() []string {
	var names []string
	for _, p := range all {
		if p.Network {
			names = append(names, p.Name)
		}
	}
	return names
}

// Lookup returns the protocol with the config name name.
func Lookup(name string) (telemetry.Protocol, bool) {
	for _, p := range all {
		if p.Name == name {
			return p, true
		}
	}
	return telemetry.Protocol{}, false
}

// Drivers returns a driver of every protocol, logging to log, for the reader to pick
// from or detect among.
func Drivers(log *slog.Logger) []telemetry.Driver {
	ds := make([]telemetry.Driver, len(all))
	for i, p := range all {
		ds[i] = p.NewDriver(telemetry.DriverConfig{Logger: log})
	}
	return ds
}
