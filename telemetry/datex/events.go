package datex

import (
	"regexp"
	"strings"
	"time"

	"lifeline/telemetry"
)

// The S/5 alarm record carries the text the monitor shows and its priority, no code:
// the channel an alarm is about is read from the text, where the monitor names it
// ("SpO2 probe off", "P1 ART high", "T2 low").
var (
	pressureInText = regexp.MustCompile(`\bP([1-6])\b`)
	tempInText     = regexp.MustCompile(`\bT([1-4])\b`)
)

// channelOfText returns the quantity and channel an alarm text names, if any.
func channelOfText(text string) (telemetry.Code, telemetry.Channel) {
	up := strings.ToUpper(text)
	switch {
	case strings.Contains(up, "SPO2"):
		return telemetry.MDC_PULS_OXIM_SAT_O2, telemetry.Channel{ID: "SpO2", Label: "SpO2"}
	case strings.Contains(up, "ECG") || strings.Contains(up, "LEAD"):
		return telemetry.MDC_ECG_HEART_RATE, telemetry.Channel{ID: "ECG", Label: "ECG"}
	case strings.Contains(up, "CO2"):
		return telemetry.MDC_AWAY_CO2_ET, telemetry.Channel{ID: "CO2", Label: "CO2"}
	case strings.Contains(up, "NIBP"):
		return telemetry.MDC_PRESS_BLD_NONINV_SYS, telemetry.Channel{ID: "NIBP", Label: "NIBP"}
	}
	if m := pressureInText.FindStringSubmatch(up); m != nil {
		return 0, telemetry.Channel{ID: "P" + m[1], Label: "P" + m[1]}
	}
	if m := tempInText.FindStringSubmatch(up); m != nil {
		return telemetry.MDC_TEMP, telemetry.Channel{ID: "T" + m[1], Label: "T" + m[1]}
	}
	return 0, telemetry.Channel{}
}

// sensorEvent turns an alarm about a sensor off the patient into a device event with
// its channel (and its clearing into sensor-on). Lead-off comes from the ECG group's
// channel-off bits instead, which name the lead (session.ecg).
func sensorEvent(text string, on bool, now time.Time) *telemetry.DeviceEvent {
	up := strings.ToUpper(text)
	off := strings.Contains(up, "PROBE OFF") || strings.Contains(up, "SENSOR OFF") ||
		strings.Contains(up, "NO PROBE") || strings.Contains(up, "NO SENSOR") || strings.Contains(up, "CHECK PROBE")
	if !off || strings.Contains(up, "LEAD") {
		return nil
	}
	code, ch := channelOfText(text)
	ev := &telemetry.DeviceEvent{State: telemetry.DeviceSensorOff, Code: code, Channel: ch, Detail: text, ReceiveTime: now}
	if !on {
		ev.State = telemetry.DeviceSensorOn
	}
	return ev
}
