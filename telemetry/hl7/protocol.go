package hl7

import "lifeline/telemetry"

// Protocol is HL7 v2 (IHE PCD-01) over MLLP, on a serial port or TCP.
var Protocol = telemetry.Protocol{
	Name:        "hl7",
	Description: "HL7 v2 / IHE PCD-01 over MLLP (Mindray, Comen and most bedside monitors' HL7 output), serial or TCP",
	Network:     true,
	NewDriver: func(c telemetry.DriverConfig) telemetry.Driver {
		return New(Config{Logger: c.Logger})
	},
	NewSimulator: func(c telemetry.SimConfig) telemetry.Simulator {
		cfg := SimConfig{Logger: c.Logger, Scenario: c.Scenario, Faults: c.Faults, Sent: c.Sent}
		if c.TwelveLead {
			cfg.Leads, cfg.ECGRate = telemetry.ECG12, 500
		}
		return NewSimulator(cfg)
	},
}
