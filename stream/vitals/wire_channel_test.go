package vitals

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"lifeline/telemetry"
)

// TestChannelOnTheWire: numerics, waves, alarms and device events carry the monitor
// channel they came from; a hospital reader gets two temperatures as two series; a
// code the box has no name for travels under the monitor's own name; and a channel
// beyond its bound is refused like any other field.
func TestChannelOnTheWire(t *testing.T) {
	at := time.Date(2026, 12, 2, 4, 30, 1, 0, time.UTC)
	t1 := telemetry.Channel{ID: "T1", Label: "ESO", Primary: true}
	t2 := telemetry.Channel{ID: "T2", Label: "SKIN"}
	evs := []telemetry.Event{
		&telemetry.Numeric{Code: telemetry.MDC_TEMP, Value: 28.4, Unit: "Cel", Channel: t1, ReceiveTime: at},
		&telemetry.Numeric{Code: telemetry.MDC_TEMP, Value: 28.3, Unit: "Cel", Channel: t2, ReceiveTime: at},
		&telemetry.Numeric{Code: 155024, Ref: "MDC_EEG_PAROX_CRTX_BURST_SUPPRN", Value: 12, Unit: "%", Channel: telemetry.Channel{ID: "1.30.1.1"}, ReceiveTime: at},
		&telemetry.Wave{Code: telemetry.MDC_PRESS_BLD_ART, Unit: "mm[Hg]", Rate: 100, Start: at, Channel: telemetry.Channel{ID: "P5", Label: "ART"}, Samples: []float32{80}, ReceiveTime: at},
		&telemetry.Alarm{Priority: telemetry.PriorityMedium, Text: "T2 LOW", Code: telemetry.MDC_TEMP, Channel: t2, On: true, ReceiveTime: at},
		&telemetry.DeviceEvent{State: telemetry.DeviceLeadOff, Code: telemetry.MDC_ECG_ELEC_POTL_I, Channel: telemetry.Channel{ID: "ECG2", Label: "I"}, ReceiveTime: at},
	}
	type wire struct {
		Type, MDC, Channel, ChannelLabel string
		Primary                          bool
	}
	var got []wire
	for i, ev := range evs {
		m := FromEvent("amb-07", telemetry.Message{Source: "monitor0", Event: ev})[0]
		m.Seq, m.Epoch = uint64(i+1), "9f2c4e1a7b3d5e60"
		data, err := Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		back, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if raw["channel"] != back.Channel {
			t.Errorf("%s: JSON channel %v, decoded %q", m.Type, raw["channel"], back.Channel)
		}
		got = append(got, wire{back.Type, back.MDC, back.Channel, back.ChannelLabel, back.Primary})
	}
	want := []wire{
		{"numeric", "MDC_TEMP", "T1", "ESO", true}, {"numeric", "MDC_TEMP", "T2", "SKIN", false},
		{"numeric", "MDC_EEG_PAROX_CRTX_BURST_SUPPRN", "1.30.1.1", "", false}, {"wave", "MDC_PRESS_BLD_ART", "P5", "ART", false},
		{"alarm", "MDC_TEMP", "T2", "SKIN", false}, {"device", "MDC_ECG_ELEC_POTL_I", "ECG2", "I", false},
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("message %d = %+v, want %+v", i, got, want[i])
		}
	}
	long := Message{V: Version, Type: TypeNumeric, Seq: 1, Epoch: "e", Device: "d", Code: 150344, BoxTime: at, Channel: strings.Repeat("x", 65)}
	if _, err := Marshal(&long); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "channel") {
		t.Errorf("a 65-byte channel: %v", err)
	}
}
