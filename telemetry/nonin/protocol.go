package nonin

import "lifeline/telemetry"

// Protocol is the Nonin OEM III serial data format 7 of finger pulse oximeters.
var Protocol = telemetry.Protocol{
	Name:        "nonin",
	Description: "Nonin OEM III pulse oximeter, serial data format 7 (9600 8N1)",
	NewDriver: func(c telemetry.DriverConfig) telemetry.Driver {
		return New(Config{Logger: c.Logger})
	},
	NewSimulator: func(c telemetry.SimConfig) telemetry.Simulator {
		return NewSimulator(SimConfig{Logger: c.Logger, Scenario: c.Scenario, Faults: c.Faults, Sent: c.Sent})
	},
}
