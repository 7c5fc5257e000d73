package intellivue

import "lifeline/telemetry"

// Protocol is Philips IntelliVue Data Export over the MIB/RS232 interface.
var Protocol = telemetry.Protocol{
	Name:        "intellivue",
	Description: "Philips IntelliVue Data Export over MIB/RS232 (115200 8N1)",
	NewDriver: func(c telemetry.DriverConfig) telemetry.Driver {
		return New(Config{Logger: c.Logger})
	},
	NewSimulator: func(c telemetry.SimConfig) telemetry.Simulator {
		cfg := SimConfig{Logger: c.Logger, Scenario: c.Scenario, Faults: c.Faults, Sent: c.Sent}
		if c.TwelveLead {
			cfg.Leads = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
		}
		return NewSimulator(cfg)
	},
}
