package datex

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"testing"
	"time"

	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/physio"
	"lifeline/telemetry/telemetrytest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// numericKey matches numerics by monitor time to the second: S/5 records carry their
// time in whole seconds, and no measurement time.
func numericKey(n *telemetry.Numeric) telemetrytest.NumericKey {
	return telemetrytest.NumericKey{Code: n.Code, Value: n.Value, Unit: n.Unit, At: n.MonitorTime.Unix(), Invalid: n.Invalid}
}

// TestDriverAgainstSimulatorOverPty runs the simulated S/5 and the driver on the two
// ends of a real pty pair at 19200 8E1, with noise, dropped and corrupted frames and a
// pulled interface cable inside the monitor, then pulls the pty itself and plugs a new
// one. Every numeric and wave sample the simulator sent intact must come out of the
// driver with the right MDC code, unit and value.
func TestDriverAgainstSimulatorOverPty(t *testing.T) {
	sc := &physio.Scenario{VTAt: 1500 * time.Millisecond, VTFor: 1500 * time.Millisecond, DesatAt: time.Second, DesatOver: time.Second, DesatTo: 85, NIBPEvery: 3 * time.Second}
	faults := Faults{Noise: 0.2, Drop: 0.05, Corrupt: 0.08, PullAt: 2500 * time.Millisecond, PullFor: 700 * time.Millisecond, Seed: 7}
	sent := &telemetrytest.Sink{}
	sim := NewSimulator(SimConfig{Logger: quietLogger(), Scenario: sc, WavePeriod: 100 * time.Millisecond, Faults: faults, Sent: sent.Emit})
	drv := New(Config{Logger: quietLogger(), Resubscribe: 400 * time.Millisecond})

	c := telemetrytest.PlugCable(t, drv.Serial())
	// The simulator's time zero is the first request, a little after this: waves
	// received after pullEnd came after the monitor's cable was back.
	pullEnd := time.Now().Add(faults.PullAt + faults.PullFor)
	s := telemetrytest.Start(c, sim, drv)
	// Run until the driver has seen the whole scenario: the VT alarm raised and
	// cleared, an NIBP, and waves after the in-monitor cable came back.
	if wait.Until(30*time.Second, func() bool { return telemetrytest.Scenario(s.Got.Events(), pullEnd, isVT).Complete() }) != nil {
		t.Log("the driver did not see the whole scenario within 30 s; the checks below say what is missing")
	}
	s.Finish(t, func() bool { return telemetrytest.Delivered(sent.Events(), s.Got.Events(), numericKey) })
	got := s.Got.Events()
	waves := telemetrytest.Compare(t, sent.Events(), got, numericKey)
	for _, code := range []telemetry.Code{telemetry.MDC_ECG_ELEC_POTL_II, telemetry.MDC_PULS_OXIM_PLETH, telemetry.MDC_PRESS_BLD_ART, telemetry.MDC_IMPED_TTHOR, telemetry.MDC_AWAY_CO2} {
		if waves[code] == 0 {
			t.Errorf("no samples of %s", code)
		}
	}
	sum := telemetrytest.Scenario(got, pullEnd, isVT)
	for _, e := range got {
		if v, ok := e.(*telemetry.Numeric); ok && v.Code == telemetry.MDC_PRESS_BLD_NONINV_SYS && v.Measured.IsZero() {
			t.Error("NIBP without measurement time")
		}
	}
	skipped := s.Got.Skips()
	t.Logf("samples per channel %v, %d events, NIBP %d, gaps %d, skipped %v", waves, len(got), sum.NIBP, sum.Gaps, skipped)
	// The in-monitor cable pull makes it forget the subscription: data after it proves
	// the driver subscribed again.
	if sum.After == 0 {
		t.Error("no waves after the monitor's cable came back: the driver did not resubscribe")
	}
	if sum.Gaps == 0 {
		t.Error("corrupted frames lost samples but no wave block was marked as a gap")
	}
	if sum.NIBP == 0 {
		t.Error("no NIBP")
	}
	if !sum.AlarmOn || !sum.AlarmOff {
		t.Errorf("V TACH alarm raised %v, cleared %v", sum.AlarmOn, sum.AlarmOff)
	}
	if skipped["bad frame: checksum"] == 0 || skipped["noise"]+skipped["bad frame: too short"] == 0 {
		t.Errorf("faults not counted: %v", skipped)
	}
}

// isVT picks the alarm of the simulated VT episode.
func isVT(v *telemetry.Alarm) bool {
	return v.Text == "V TACH" && v.Priority == telemetry.PriorityHigh
}

// TestPtyPulledAndReplugged pulls the pty pair out from under both ends: both must
// return an error (not hang), and on a new pair the driver subscribes afresh.
func TestPtyPulledAndReplugged(t *testing.T) {
	drv := New(Config{Logger: quietLogger()})
	for round := 0; round < 2; round++ {
		sent := &telemetrytest.Sink{}
		sim := NewSimulator(SimConfig{Logger: quietLogger(), WavePeriod: 100 * time.Millisecond, Sent: sent.Emit})
		c := telemetrytest.PlugCable(t, drv.Serial())
		s := telemetrytest.Start(c, sim, drv)
		// Pull once the driver has three wave blocks of every channel.
		wait.For(t, 20*time.Second, "three wave blocks of every channel", func() bool {
			for _, code := range []telemetry.Code{telemetry.MDC_ECG_ELEC_POTL_II, telemetry.MDC_PULS_OXIM_PLETH, telemetry.MDC_PRESS_BLD_ART, telemetry.MDC_IMPED_TTHOR, telemetry.MDC_AWAY_CO2} {
				if len(s.Got.Waves(code)) < 3 {
					return false
				}
			}
			return true
		})
		s.PullCable(t, fmt.Sprintf("round %d", round))
		got := s.Got.Events()
		var waves int
		for _, e := range got {
			if _, ok := e.(*telemetry.Wave); ok {
				waves++
			}
		}
		if waves < 3 {
			t.Fatalf("round %d: only %d wave blocks before the pull", round, waves)
		}
		// What arrived is what was sent, in order; the tail in flight at the pull may be
		// missing, so compare the common prefix per channel.
		sentWaves := map[telemetry.Code][]float32{}
		for _, e := range sent.Events() {
			if w, ok := e.(*telemetry.Wave); ok {
				sentWaves[w.Code] = append(sentWaves[w.Code], w.Samples...)
			}
		}
		gotWaves := map[telemetry.Code][]float32{}
		for _, e := range got {
			if w, ok := e.(*telemetry.Wave); ok {
				gotWaves[w.Code] = append(gotWaves[w.Code], w.Samples...)
			}
		}
		codes := make([]int, 0)
		for c, g := range gotWaves {
			codes = append(codes, int(c))
			sw := sentWaves[c]
			if len(g) > len(sw) {
				t.Fatalf("round %d: %s received %d samples, sent %d", round, c, len(g), len(sw))
			}
			for i := range g {
				if g[i] != sw[i] {
					t.Fatalf("round %d: %s sample %d = %v, sent %v", round, c, i, g[i], sw[i])
				}
			}
		}
		sort.Ints(codes)
		if len(codes) != len(DefaultWaves) {
			t.Fatalf("round %d: channels %v", round, codes)
		}
	}
}

func TestProbe(t *testing.T) {
	drv := New(Config{})
	if drv.Probe(drv.ProbeRequest()) {
		t.Error("the probe request itself (an echoing line) was taken for a monitor")
	}
	wire, _ := os.ReadFile("testdata/s5_phdb_capture.raw")
	if !drv.Probe(wire[:2000]) {
		t.Error("a real S/5 capture was not recognised")
	}
	noise := make([]byte, 4000)
	for i := range noise {
		noise[i] = byte(i*7 + i/3)
	}
	if drv.Probe(noise) {
		t.Error("noise was taken for a monitor")
	}
}
