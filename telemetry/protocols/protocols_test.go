package protocols_test

import (
	"testing"
	"time"

	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/protocols"
	"lifeline/telemetry/telemetrytest"
)

// TestEveryProtocolDriverReadsItsSimulator builds each registered protocol's driver and
// simulator through the registry alone and cables them together with socat: the driver
// must decode numerics and waves, and everything the simulator sent intact must arrive.
// This proves each entry's factories are wired to the right protocol.
func TestEveryProtocolDriverReadsItsSimulator(t *testing.T) {
	for _, p := range protocols.All() {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			drv := p.NewDriver(telemetry.DriverConfig{})
			if drv.Protocol() != p.Name {
				t.Fatalf("the %s entry builds a %s driver", p.Name, drv.Protocol())
			}
			if p.Description == "" {
				t.Errorf("%s has no description for operators", p.Name)
			}
			sent := &telemetrytest.Sink{}
			sim := p.NewSimulator(telemetry.SimConfig{Sent: sent.Emit})
			c := telemetrytest.PlugCable(t, drv.Serial())
			s := telemetrytest.Start(c, sim, drv)
			wait.For(t, 30*time.Second, p.Name+" numerics and waves decoded", func() bool {
				var nums, waves int
				for _, e := range s.Got.Events() {
					switch e.(type) {
					case *telemetry.Numeric:
						nums++
					case *telemetry.Wave:
						waves++
					}
				}
				return nums > 0 && waves > 0
			})
			key := func(n *telemetry.Numeric) telemetrytest.NumericKey {
				return telemetrytest.NumericKey{Code: n.Code, Value: n.Value, Unit: n.Unit, Invalid: n.Invalid}
			}
			s.Finish(t, func() bool { return telemetrytest.Delivered(sent.Events(), s.Got.Events(), key) })
			telemetrytest.Compare(t, sent.Events(), s.Got.Events(), key)
		})
	}
}

func TestLookupAndNames(t *testing.T) {
	names := protocols.Names()
	if len(names) != 4 {
		t.Fatalf("protocols %v, want hl7, nonin, datex and intellivue", names)
	}
	for _, n := range names {
		if p, ok := protocols.Lookup(n); !ok || p.Name != n {
			t.Errorf("Lookup(%q) = %q, %v", n, p.Name, ok)
		}
	}
	if _, ok := protocols.Lookup(protocols.Auto); ok {
		t.Error("auto is a setting, not a protocol")
	}
	if n := protocols.NetworkNames(); len(n) != 1 || n[0] != "hl7" {
		t.Errorf("network protocols %v, want only hl7 (MLLP)", n)
	}
	for _, d := range protocols.Drivers(nil) {
		if p, _ := protocols.Lookup(d.Protocol()); p.Network != (d.Protocol() == "hl7") {
			t.Errorf("%s: Network = %v; only hl7 runs over TCP", d.Protocol(), p.Network)
		}
	}
}
