package datex

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/telemetrytest"
)

// basicFields names the 16-bit fields of the basic class in wire order (Basic.walk).
var basicFields = func() []string {
	var out []string
	p := func(n int) {
		for _, f := range []string{"Sys", "Dia", "Mean", "HR"} {
			out = append(out, fmt.Sprintf("P%d.%s", n, f))
		}
	}
	out = append(out, "ECG.HR", "ECG.ST1", "ECG.ST2", "ECG.ST3", "ECG.ImpRR")
	for i := 1; i <= 4; i++ {
		p(i)
	}
	out = append(out, "NIBP.Sys", "NIBP.Dia", "NIBP.Mean", "NIBP.HR", "T1.Temp", "T2.Temp", "T3.Temp", "T4.Temp",
		"SpO2.SpO2", "SpO2.PR", "SpO2.IRAmp", "SpO2.SvO2", "CO2.Et", "CO2.Fi", "CO2.RR", "CO2.AmbPress",
		"O2.Et", "O2.Fi", "N2O.Et", "N2O.Fi", "AA.Et", "AA.Fi", "AA.MACSum")
	for _, f := range []string{"RR", "PPeak", "PEEP", "PPlat", "TVInsp", "TVExp", "Compliance", "MVExp"} {
		out = append(out, "FlowVol."+f)
	}
	out = append(out, "COWedge.CO", "COWedge.BloodTemp", "COWedge.RightEF", "COWedge.PCWP", "NMT.T1", "NMT.TRatio", "NMT.PTC",
		"ECGExtra.HR", "ECGExtra.HRMax", "ECGExtra.HRMin", "SvO2.SvO2")
	p(5)
	p(6)
	return out
}()

func listed(field string) (string, bool) {
	if why, ok := NotPublished[field]; ok {
		return why, true
	}
	group, _, _ := strings.Cut(field, ".")
	why, ok := NotPublished[group+".*"]
	return why, ok
}

// allPresentBasic returns a basic class with every group's module present and every
// value absent.
func allPresentBasic() *Basic {
	b := NewBasic()
	b.walk(func(g *GroupHeader) { g.Status = GroupExists | GroupActive }, func(*int16) {})
	return b
}

func decodeBasic1(t *testing.T, b *Basic) []telemetry.Event {
	t.Helper()
	sink := &telemetrytest.Sink{}
	s := newSession(New(Config{}), sink)
	s.numerics(Phdb{Time: time.Unix(1_700_000_000, 0).UTC(), Class: ClassBasic, Subtype: PhDisplay, Basic: b}, time.Now())
	return sink.Events()
}

// TestEveryBasicFieldIsPublishedOrListed sets one field of the basic class at a time
// (the NIBP triple together, as the monitor sends it) and checks that it reaches the
// bus, or that NotPublished lists it with a reason, and nothing else comes out of a
// record whose other values are all absent.
func TestEveryBasicFieldIsPublishedOrListed(t *testing.T) {
	if n := len(basicFields); n != 71 {
		t.Fatalf("basicFields names %d fields; the basic class has 71", n)
	}
	for k, name := range basicFields {
		b := allPresentBasic()
		i := 0
		b.walk(func(*GroupHeader) {}, func(v *int16) {
			if i == k || (strings.HasPrefix(name, "NIBP.") && name != "NIBP.HR" && strings.HasPrefix(basicFields[i], "NIBP.") && basicFields[i] != "NIBP.HR") {
				*v = 3700 // valid for every field, and a plausible blood temperature
			}
			i++
		})
		var nums []*telemetry.Numeric
		for _, e := range decodeBasic1(t, b) {
			if n, ok := e.(*telemetry.Numeric); ok {
				nums = append(nums, n)
			}
		}
		why, isListed := listed(name)
		switch {
		case isListed && len(nums) > 0:
			t.Errorf("%s is listed as not published (%s) but %d numerics came out", name, why, len(nums))
		case !isListed && len(nums) == 0:
			t.Errorf("%s: decoded but never published, and not listed in NotPublished", name)
		case isListed && why == "":
			t.Errorf("%s is listed without a reason", name)
		}
		for _, n := range nums {
			if n.Channel.ID == "" {
				t.Errorf("%s: %s published without a channel", name, n.Code)
			}
			if _, ok := telemetry.Lookup(n.Code); !ok {
				t.Errorf("%s: published as %s, a code mdc.go does not name", name, n.Code)
			}
		}
	}
}

// TestCaptureFromS5ReachesTheBus runs the real S/5 capture through the driver's
// decoding: the room-air FiO2 (20.89 % in the first record), the airway CO2 as a partial
// pressure via the monitor's ambient pressure (758.3 mmHg), the T1 probe with its slot,
// and no value the monitor marked absent or under range (its CO2 respiration rate).
func TestCaptureFromS5ReachesTheBus(t *testing.T) {
	wire, err := os.ReadFile("testdata/s5_phdb_capture.raw")
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := deframeAll(t, wire)
	sink := &telemetrytest.Sink{}
	s := newSession(New(Config{}), sink)
	s.record(recs[0], time.Now())
	got := map[string]*telemetry.Numeric{}
	for _, e := range sink.Events() {
		if n, ok := e.(*telemetry.Numeric); ok {
			got[n.Code.Name()+"@"+n.Channel.ID] = n
		}
	}
	for key, want := range map[string]struct {
		value float64
		unit  string
	}{
		"MDC_CONC_AWAY_O2_INSP@O2":    {20.89, "%"},
		"MDC_CONC_AWAY_O2_ET@O2":      {20.89, "%"},
		"MDC_AWAY_CO2_ET@CO2":         {0.1, "mm[Hg]"}, // 0.01 % of 758.3 mmHg, shown to 0.1 mmHg
		"MDC_AWAY_CO2_INSP_MIN@CO2":   {0.1, "mm[Hg]"},
		"MDC_TEMP@T1":                 {20.7, "Cel"},
		"MDC_CONC_AWAY_N2O_ET@N2O":    {0, "%"},
		"MDC_CONC_AWAY_AGENT_ET@AA":   {0, "%"},
		"NOM_CONC_AWAY_SUM_MAC_ET@AA": {0, "1"},
	} {
		n := got[key]
		if n == nil {
			t.Errorf("%s missing; got %v", key, keysOf(got))
			continue
		}
		if n.Value != want.value || n.Unit != want.unit {
			t.Errorf("%s = %v %s, want %v %s", key, n.Value, n.Unit, want.value, want.unit)
		}
	}
	for key := range got {
		if strings.HasPrefix(key, "MDC_AWAY_RESP_RATE") || strings.HasPrefix(key, "MDC_ECG_HEART_RATE") || strings.HasPrefix(key, "MDC_PULS_OXIM_SAT_O2") {
			t.Errorf("%s published, but the capture has no such value (under range / no data)", key)
		}
	}
	if got["MDC_TEMP@T1"] != nil && got["MDC_TEMP@T1"].Channel.Label != "T1" {
		t.Errorf("T1 label %q: the capture's label 11 means T1", got["MDC_TEMP@T1"].Channel.Label)
	}
}

func keysOf(m map[string]*telemetry.Numeric) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestSameCodeOnTwoChannels: four temperature probes and an arterial line on P1 and P5
// come out as separate values, each with its slot and the site the monitor shows.
func TestSameCodeOnTwoChannels(t *testing.T) {
	b := allPresentBasic()
	for i, v := range []int16{3710, 3650, 2840, 2830} {
		b.T[i].Temp = v
	}
	b.T[0].Label, b.T[1].Label = 1, 7 // ESO, SKIN
	b.P[0].Label, b.P[4].Label = PressART, PressART
	b.P[0].Sys, b.P[4].Sys = 12000, 11800
	type got struct {
		code  telemetry.Code
		id    string
		label string
		value float64
	}
	var all []got
	for _, e := range decodeBasic1(t, b) {
		if n, ok := e.(*telemetry.Numeric); ok {
			all = append(all, got{n.Code, n.Channel.ID, n.Channel.Label, n.Value})
		}
	}
	want := []got{
		{telemetry.MDC_PRESS_BLD_ART_SYS, "P1", "ART", 120}, {telemetry.MDC_PRESS_BLD_ART_SYS, "P5", "ART", 118},
		{telemetry.MDC_TEMP_ESOPH, "T1", "ESO", 37.1}, {telemetry.MDC_TEMP_SKIN, "T2", "SKIN", 36.5},
		{telemetry.MDC_TEMP, "T3", "T3", 28.4}, {telemetry.MDC_TEMP, "T4", "T4", 28.3},
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Errorf("numerics\n got %v\nwant %v", all, want)
	}
}

// TestLeadOffAndSensorOffEvents: the ECG group's channel-off bits raise lead-off events
// naming the lead of that channel (once, and sensor-on when it comes back), and an SpO2
// "probe off" alarm raises a sensor-off event on the SpO2 channel.
func TestLeadOffAndSensorOffEvents(t *testing.T) {
	sink := &telemetrytest.Sink{}
	s := newSession(New(Config{}), sink)
	at := time.Unix(1_700_000_000, 0).UTC()
	b := allPresentBasic()
	b.ECG.Label = 2 | 1<<4 | 3<<8 // channels show II, I, III
	send := func(status uint32) {
		b.ECG.Status = GroupExists | GroupActive | status
		s.numerics(Phdb{Time: at, Class: ClassBasic, Subtype: PhDisplay, Basic: b}, at)
	}
	send(ecgStatusLeadOff1 << 1) // channel 2 (lead I) off
	send(ecgStatusLeadOff1 << 1) // still off: no new event
	send(0)                      // back on
	var devs []*telemetry.DeviceEvent
	for _, e := range sink.Events() {
		if d, ok := e.(*telemetry.DeviceEvent); ok {
			devs = append(devs, d)
		}
	}
	if len(devs) != 2 || devs[0].State != telemetry.DeviceLeadOff || devs[0].Channel.ID != "ECG2" || devs[0].Channel.Label != "I" ||
		devs[0].Code != telemetry.MDC_ECG_ELEC_POTL_I || devs[1].State != telemetry.DeviceSensorOn || devs[1].Channel.ID != "ECG2" {
		t.Errorf("lead events %+v", devs)
	}

	m := AlarmMessage{}
	m.Alarms[0] = DisplayedAlarm{Text: "SpO2 probe off", Priority: AlarmMedium}
	rec := Record{Header: Header{MainType: MainAlarm, Time: at}, Subrecords: []Subrecord{{Type: AlarmStatus, Data: m.Marshal()}}}
	raw, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sink2 := &telemetrytest.Sink{}
	s2 := newSession(New(Config{}), sink2)
	s2.record(raw, at)
	var alarm *telemetry.Alarm
	var dev *telemetry.DeviceEvent
	for _, e := range sink2.Events() {
		switch v := e.(type) {
		case *telemetry.Alarm:
			alarm = v
		case *telemetry.DeviceEvent:
			if v.State != telemetry.DeviceConnected {
				dev = v
			}
		}
	}
	if alarm == nil || alarm.Channel.ID != "SpO2" || alarm.Code != telemetry.MDC_PULS_OXIM_SAT_O2 {
		t.Errorf("alarm %+v", alarm)
	}
	if dev == nil || dev.State != telemetry.DeviceSensorOff || dev.Channel.ID != "SpO2" {
		t.Errorf("sensor event %+v", dev)
	}
}

// TestDisplayedHRFromAnotherSource: when the monitor's HR comes from SpO2, the
// ECG-derived rate is the primary heart rate, and the displayed one says its source.
func TestDisplayedHRFromAnotherSource(t *testing.T) {
	b := allPresentBasic()
	b.ECG.Status |= 6 << ecgStatusHRSourceShift // SpO2
	b.ECG.HR, b.ECGExtra.HR = 88, 90
	var hr []*telemetry.Numeric
	for _, e := range decodeBasic1(t, b) {
		if n, ok := e.(*telemetry.Numeric); ok && n.Code == telemetry.MDC_ECG_HEART_RATE {
			hr = append(hr, n)
		}
	}
	if len(hr) != 2 || hr[0].Channel.Label != "HR(SpO2)" || hr[0].Channel.Primary || !hr[1].Channel.Primary || hr[1].Value != 90 {
		t.Fatalf("heart rates %+v", hr)
	}
	if p := telemetry.PrimaryOf(hr, []string{"m", "m"}); p.Value != 90 {
		t.Errorf("primary HR %v, want the ECG-derived 90", p.Value)
	}
}

// TestECGWaveLeadFromTheGroupLabel: once a displayed-values record says ECG1 shows lead
// III, ECG1 samples go out as lead III on channel ECG1, not as the configured II.
func TestECGWaveLeadFromTheGroupLabel(t *testing.T) {
	sink := &telemetrytest.Sink{}
	s := newSession(New(Config{}), sink)
	at := time.Unix(1_700_000_000, 0).UTC()
	wave := func() *telemetry.Wave {
		w := WaveSubrecord{Type: WaveECG1, Samples: []int16{10, 20}}
		rec := Record{Header: Header{MainType: MainWave, Time: at}, Subrecords: []Subrecord{{Type: WaveECG1, Data: w.Marshal()}}}
		raw, err := rec.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s.record(raw, at)
		evs := sink.Events()
		return evs[len(evs)-1].(*telemetry.Wave)
	}
	if w := wave(); w.Code != telemetry.MDC_ECG_ELEC_POTL_II || w.Channel.ID != "ECG1" {
		t.Errorf("before any label: %s on %+v, want the configured II on ECG1", w.Code, w.Channel)
	}
	b := allPresentBasic()
	b.ECG.Label = 3 // ECG1 shows III
	s.numerics(Phdb{Time: at, Class: ClassBasic, Subtype: PhDisplay, Basic: b}, at)
	if w := wave(); w.Code != telemetry.MDC_ECG_ELEC_POTL_III || w.Channel.Label != "III" {
		t.Errorf("after the label: %s on %+v, want III", w.Code, w.Channel)
	}
}
