package datex

import "lifeline/telemetry"

// Protocol is the Datex-Ohmeda S/5 Computer Interface.
var Protocol = telemetry.Protocol{
	Name:        "datex",
	Description: "Datex-Ohmeda / GE S/5 Computer Interface (19200 8E1)",
	NewDriver: func(c telemetry.DriverConfig) telemetry.Driver {
		return New(Config{Logger: c.Logger})
	},
	NewSimulator: func(c telemetry.SimConfig) telemetry.Simulator {
		return NewSimulator(SimConfig{Logger: c.Logger, Scenario: c.Scenario, Faults: c.Faults, Sent: c.Sent})
	},
}
