package intellivue

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/physio"
	"lifeline/telemetry/telemetrytest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// numericKey matches numerics by monitor and measurement time to the millisecond: Data
// Export carries both as relative time in 1/8 ms.
func numericKey(n *telemetry.Numeric) telemetrytest.NumericKey {
	return telemetrytest.NumericKey{Code: n.Code, Value: n.Value, Unit: n.Unit,
		At: n.MonitorTime.UnixMilli(), Measured: n.Measured.UnixMilli(), Invalid: n.Invalid}
}

// TestDriverAgainstSimulatorOverPty runs the simulated IntelliVue and the driver on the
// two ends of a real pty pair at 115200 8N1: association, MDS create event and its
// result, extended polls of numerics, 500 Hz ECG and other waves and alerts, keep-alive,
// renewed polls, and a pulled cable after which the monitor has dropped the association
// and the driver must associate again. Noise, dropped and corrupted frames throughout.
// Every numeric and sample the simulator sent intact must come out right.
func TestDriverAgainstSimulatorOverPty(t *testing.T) {
	sc := &physio.Scenario{VTAt: 1200 * time.Millisecond, VTFor: 1500 * time.Millisecond, DesatAt: time.Second, DesatOver: time.Second, DesatTo: 85, NIBPEvery: 3 * time.Second}
	faults := Faults{Noise: 0.2, Drop: 0.03, Corrupt: 0.05, PullAt: 2500 * time.Millisecond, PullFor: time.Second, Seed: 11}
	sent := &telemetrytest.Sink{}
	sim := NewSimulator(SimConfig{Logger: quietLogger(), Scenario: sc, AssocTimeout: 3 * time.Second, Leads: []int{0, 1, 2}, Faults: faults, Sent: sent.Emit})
	drv := New(Config{Logger: quietLogger(), KeepAlive: time.Second, Silence: 1500 * time.Millisecond, Retry: 200 * time.Millisecond, PollPeriod: 2 * time.Second})

	c := telemetrytest.PlugCable(t, drv.Serial())
	// The simulator's time zero is the association, a little after this: waves
	// received after pullEnd came after the cable was back and the driver associated
	// again.
	pullEnd := time.Now().Add(faults.PullAt + faults.PullFor)
	s := telemetrytest.Start(c, sim, drv)
	// Run until the driver has seen the whole scenario: the VT alarm raised and
	// cleared, an NIBP, and waves after the cable came back.
	if wait.Until(30*time.Second, func() bool { return telemetrytest.Scenario(s.Got.Events(), pullEnd, isVT).Complete() }) != nil {
		t.Log("the driver did not see the whole scenario within 30 s; the checks below say what is missing")
	}
	s.Finish(t, func() bool { return telemetrytest.Delivered(sent.Events(), s.Got.Events(), numericKey) })
	got := s.Got.Events()
	waves := telemetrytest.Compare(t, sent.Events(), got, numericKey)
	for _, code := range []telemetry.Code{telemetry.MDC_ECG_ELEC_POTL_I, telemetry.MDC_ECG_ELEC_POTL_II, telemetry.MDC_ECG_ELEC_POTL_III,
		telemetry.MDC_PULS_OXIM_PLETH, telemetry.MDC_PRESS_BLD_ART_ABP, telemetry.MDC_IMPED_TTHOR} {
		if waves[code] == 0 {
			t.Errorf("no samples of %s", code)
		}
	}
	for _, e := range got {
		switch v := e.(type) {
		case *telemetry.Wave:
			if v.Code == telemetry.MDC_ECG_ELEC_POTL_II && v.Rate != 500 {
				t.Errorf("ECG at %v Hz, want 500", v.Rate)
			}
		case *telemetry.Numeric:
			if v.Code == telemetry.MDC_PRESS_BLD_NONINV_SYS && v.Measured.IsZero() {
				t.Error("NIBP without measurement time")
			}
		}
	}
	sum := telemetrytest.Scenario(got, pullEnd, isVT)
	t.Logf("samples %v, events %d, gaps %d, NIBP %d, skipped %v", waves, len(got), sum.Gaps, sum.NIBP, s.Got.Skips())
	if sum.Connected != 1 {
		t.Errorf("%d connected events", sum.Connected)
	}
	if sum.After == 0 {
		t.Error("no waves after the cable came back: the driver did not associate again")
	}
	if sum.Gaps == 0 {
		t.Error("lost frames but no wave block marked as a gap")
	}
	if sum.NIBP == 0 {
		t.Error("no NIBP")
	}
	if !sum.AlarmOn || !sum.AlarmOff {
		t.Errorf("VTACH alarm raised %v, cleared %v", sum.AlarmOn, sum.AlarmOff)
	}
}

// isVT picks the alarm of the simulated VT episode.
func isVT(v *telemetry.Alarm) bool {
	return v.Text == "***VTACH" && v.Priority == telemetry.PriorityHigh && v.Code == telemetry.MDC_ECG_HEART_RATE
}

// TestPtyPulledAndReplugged pulls the pty out from under both ends; both must return an
// error, and on a new pair the driver associates afresh and data flows again.
func TestPtyPulledAndReplugged(t *testing.T) {
	drv := New(Config{Logger: quietLogger()})
	for round := 0; round < 2; round++ {
		sent := &telemetrytest.Sink{}
		sim := NewSimulator(SimConfig{Logger: quietLogger(), Sent: sent.Emit})
		c := telemetrytest.PlugCable(t, drv.Serial())
		s := telemetrytest.Start(c, sim, drv)
		wait.For(t, 20*time.Second, "4 wave blocks and 5 numerics", func() bool {
			waves, nums := count(s.Got.Events())
			return waves >= 4 && nums >= 5
		})
		s.PullCable(t, fmt.Sprintf("round %d", round))
		if waves, nums := count(s.Got.Events()); waves < 4 || nums < 5 {
			t.Fatalf("round %d: %d wave blocks and %d numerics before the pull", round, waves, nums)
		}
	}
}

// count returns the wave blocks and numerics among evs.
func count(evs []telemetry.Event) (waves, nums int) {
	for _, e := range evs {
		switch e.(type) {
		case *telemetry.Wave:
			waves++
		case *telemetry.Numeric:
			nums++
		}
	}
	return waves, nums
}

func TestProbe(t *testing.T) {
	drv := New(Config{})
	if drv.Probe(drv.ProbeRequest()) {
		t.Error("the box's own association request (an echoing line) was taken for a monitor")
	}
	if !drv.Probe(append([]byte{0x00, 0x42}, Frame(AssociationResponse(UserInfo{SystemType: systemServer}))...)) {
		t.Error("an association response was not recognised")
	}
	noise := make([]byte, 3000)
	for i := range noise {
		noise[i] = byte(i*13 + i/7)
	}
	if drv.Probe(noise) {
		t.Error("noise was taken for a monitor")
	}
}
