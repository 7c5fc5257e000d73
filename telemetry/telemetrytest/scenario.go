package telemetrytest

import (
	"time"

	"lifeline/telemetry"
)

// ScenarioSeen is what a driver made, so far, of the scenario the pty tests play: an
// alarm episode, NIBP readings and a cable pulled inside the monitor.
type ScenarioSeen struct {
	Connected int  // device-connected events
	After     int  // wave blocks received after the pulled cable was back
	Gaps      int  // wave blocks marked as following lost samples
	NIBP      int  // systolic NIBP readings
	AlarmOn   bool // the episode's alarm was raised
	AlarmOff  bool // and cleared
}

// Complete reports whether the whole scenario has come through: the alarm raised and
// cleared, an NIBP, and waves after the pull.
func (s ScenarioSeen) Complete() bool { return s.After > 0 && s.NIBP > 0 && s.AlarmOn && s.AlarmOff }

// Scenario summarises got: pullEnd is when the pulled cable was back, isEpisode picks
// the episode's alarm (its text and priority are the protocol's).
func Scenario(got []telemetry.Event, pullEnd time.Time, isEpisode func(*telemetry.Alarm) bool) ScenarioSeen {
	var s ScenarioSeen
	for _, e := range got {
		switch v := e.(type) {
		case *telemetry.DeviceEvent:
			if v.State == telemetry.DeviceConnected {
				s.Connected++
			}
		case *telemetry.Wave:
			if v.ReceiveTime.After(pullEnd) {
				s.After++
			}
			if v.Gap {
				s.Gaps++
			}
		case *telemetry.Numeric:
			if v.Code == telemetry.MDC_PRESS_BLD_NONINV_SYS {
				s.NIBP++
			}
		case *telemetry.Alarm:
			if isEpisode(v) {
				s.AlarmOn = s.AlarmOn || v.On
				s.AlarmOff = s.AlarmOff || !v.On
			}
		}
	}
	return s
}
