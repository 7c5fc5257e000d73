package hl7

import (
	"os"
	"strings"
	"testing"
	"time"

	"lifeline/telemetry"
)

func decodeFile(t *testing.T, name string) Result {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return Decode(m, time.Now(), time.UTC)
}

type chanValue struct {
	id, label string
	value     float64
	primary   bool
}

func channelValues(evs []telemetry.Event, c telemetry.Code) []chanValue {
	var out []chanValue
	for _, e := range evs {
		if n, ok := e.(*telemetry.Numeric); ok && n.Code == c {
			out = append(out, chanValue{n.Channel.ID, n.Channel.Label, n.Value, n.Channel.Primary})
		}
	}
	return out
}

// TestGEB40ChannelsStayApart: the GE manual's example reports two respiration rates
// (airway VMD 1.20 and ECG-impedance VMD 1.6) and two temperatures (1.26.1.1 and
// 1.26.1.2); each keeps its OBX-4 channel and the device row's name, and the capnograph's
// rate is the primary one.
func TestGEB40ChannelsStayApart(t *testing.T) {
	res := decodeFile(t, "testdata/ge_b40_pcd01.hl7")
	for _, c := range []struct {
		code telemetry.Code
		want []chanValue
	}{
		{telemetry.MDC_RESP_RATE, []chanValue{{"1.20.1.1", "ANALY_AWAY_MULTI_PARAM", 18, true}, {"1.6.1.1", "ECG_RESP", 30, false}}},
		{telemetry.MDC_TEMP, []chanValue{{"1.26.1.1", "METER_TEMP", 37.1, true}, {"1.26.1.2", "METER_TEMP", 36.5, false}}},
		{telemetry.MDC_PRESS_BLD_ART_SYS, []chanValue{{"1.13.1.1", "METER_PRESS_BLD", 112, true}}},
	} {
		got := channelValues(res.Events, c.code)
		if len(got) != len(c.want) {
			t.Errorf("%s: %+v, want %+v", c.code.Name(), got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s[%d] = %+v, want %+v", c.code.Name(), i, got[i], c.want[i])
			}
		}
	}
}

// TestGECapnographyNamed: the airway-gas rows of a GE B40-layout message come out named
// (MDC_CONC_AWAY_CO2_EXP, labelled EtCO2) with their channels, not as MDC_CODE_<n>.
func TestGECapnographyNamed(t *testing.T) {
	res := decodeFile(t, "testdata/ge_b40_co2_pcd01.hl7")
	if res.Ignored != 0 {
		t.Errorf("%d ignored: %s", res.Ignored, res.FirstProb)
	}
	byName := map[string]*telemetry.Numeric{}
	for _, e := range res.Events {
		if n, ok := e.(*telemetry.Numeric); ok {
			byName[telemetry.NameOf(n.Code, n.Ref)] = n
		}
	}
	for name, want := range map[string]struct {
		value          float64
		unit, ch, lbl  string
		quantityLabel  string
		primaryChannel bool
	}{
		"MDC_CONC_AWAY_CO2_EXP":   {1, "mm[Hg]", "1.11.1.1", "GEN_CONC_AWAY", "EtCO2", true},
		"MDC_CONC_AWAY_CO2_INSP":  {1, "mm[Hg]", "1.11.1.2", "GEN_CONC_AWAY", "FiCO2", true},
		"MDC_ECG_HEART_RATE":      {68, "/min", "1.5.1.1", "ECG", "HR", true},
		"MDC_PULS_OXIM_SAT_O2":    {97, "%", "1.22.1.2", "ANALY_SAT_O2", "SpO2", true},
		"MDC_PULS_OXIM_PULS_RATE": {67, "/min", "1.22.1.1", "ANALY_SAT_O2", "PR", true},
	} {
		n := byName[name]
		if n == nil {
			t.Errorf("%s missing; got %v", name, keys(byName))
			continue
		}
		q, _ := telemetry.Lookup(n.Code)
		if n.Value != want.value || n.Unit != want.unit || n.Channel.ID != want.ch || n.Channel.Label != want.lbl || q.Label != want.quantityLabel {
			t.Errorf("%s = %v %s on %+v (label %q), want %+v", name, n.Value, n.Unit, n.Channel, q.Label, want)
		}
	}
}

func keys(m map[string]*telemetry.Numeric) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestUnknownCodeKeepsTheMessageName: a code mdc.go does not have (GE's EEG burst
// suppression, 155024) comes out under the name the message gives it, and keeps that
// name through Lifeline's own HL7 export and back.
func TestUnknownCodeKeepsTheMessageName(t *testing.T) {
	msg := "MSH|^~\\&|VSP^080019FFFE0B4020^EUI-64|GE Healthcare|||20130122134100||ORU^R01^ORU_R01|1|P|2.6|||NE|AL\r" +
		"OBX|1||70086^MDC_DEV_ANALY_EEG_VMD^MDC|1.30.0.0|||||||X\r" +
		"OBX|2|NM|155024^MDC_EEG_PAROX_CRTX_BURST_SUPPRN^MDC|1.30.1.1|12|262688^MDC_DIM_PERCENT^MDC|||||R\r"
	if _, known := telemetry.Lookup(155024); known {
		t.Fatal("the test needs a code mdc.go does not have; 155024 was added: pick another")
	}
	m, err := Parse([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	res := Decode(m, time.Now(), time.UTC)
	if len(res.Events) != 1 {
		t.Fatalf("events %v, ignored %s", res.Events, res.FirstProb)
	}
	n := res.Events[0].(*telemetry.Numeric)
	if got := telemetry.NameOf(n.Code, n.Ref); got != "MDC_EEG_PAROX_CRTX_BURST_SUPPRN" || n.Value != 12 || n.Channel.ID != "1.30.1.1" {
		t.Fatalf("decoded %s = %v on %+v", got, n.Value, n.Channel)
	}
	back, err := Parse(EncodeORU(Header{ControlID: "2", Time: time.Now()}, []*telemetry.Numeric{n}, nil))
	if err != nil {
		t.Fatal(err)
	}
	again := Decode(back, time.Now(), time.UTC).Events
	if len(again) != 1 {
		t.Fatalf("round trip: %v", again)
	}
	g := again[0].(*telemetry.Numeric)
	if telemetry.NameOf(g.Code, g.Ref) != "MDC_EEG_PAROX_CRTX_BURST_SUPPRN" || g.Channel != n.Channel {
		t.Errorf("round trip: %s on %+v, want the message's name on %+v", telemetry.NameOf(g.Code, g.Ref), g.Channel, n.Channel)
	}
}

// TestChannelsRoundTripThroughExport: channels, their labels and an alarm's channel
// survive EncodeORU / EncodeAlarms and Decode; a value without a channel stays without.
func TestChannelsRoundTripThroughExport(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	nums := []*telemetry.Numeric{
		{Code: telemetry.MDC_TEMP, Value: 28.4, Unit: telemetry.UnitCelsius, Channel: telemetry.Channel{ID: "T1", Label: "ESO"}, MonitorTime: t0},
		{Code: telemetry.MDC_TEMP, Value: 28.3, Unit: telemetry.UnitCelsius, Channel: telemetry.Channel{ID: "T2", Label: "SKIN|2"}, MonitorTime: t0},
		{Code: telemetry.MDC_PULS_OXIM_SAT_O2, Value: 97, Unit: telemetry.UnitPercent, MonitorTime: t0},
	}
	wave := &telemetry.Wave{Code: telemetry.MDC_PRESS_BLD_ART, Unit: telemetry.UnitMMHg, Rate: 100, Start: t0, Channel: telemetry.Channel{ID: "P1", Label: "ART"}, Samples: []float32{80, 81}}
	m, err := Parse(EncodeORU(Header{ControlID: "3", Time: t0}, nums, []*telemetry.Wave{wave}))
	if err != nil {
		t.Fatal(err)
	}
	res := Decode(m, t0, time.UTC)
	if len(res.Events) != 4 {
		t.Fatalf("%d events, ignored %s", len(res.Events), res.FirstProb)
	}
	for i, want := range nums {
		g := res.Events[i].(*telemetry.Numeric)
		if g.Channel.ID != want.Channel.ID || g.Channel.Label != want.Channel.Label || g.Value != want.Value {
			t.Errorf("numeric %d: %v on %+v, want %v on %+v", i, g.Value, g.Channel, want.Value, want.Channel)
		}
	}
	if w := res.Events[3].(*telemetry.Wave); w.Channel.ID != "P1" || w.Channel.Label != "ART" || w.Rate != 100 {
		t.Errorf("wave %+v", w)
	}
	al := &telemetry.Alarm{Priority: telemetry.PriorityMedium, Text: "T2 PROBE OFF", Code: telemetry.MDC_TEMP, On: true, Channel: telemetry.Channel{ID: "T2", Label: "T2"}, MonitorTime: t0}
	m, err = Parse(EncodeAlarms(Header{ControlID: "4", Time: t0}, []*telemetry.Alarm{al, {Text: "CHECK CABLE", On: true, MonitorTime: t0}}))
	if err != nil {
		t.Fatal(err)
	}
	evs := Decode(m, t0, time.UTC).Events
	var alarms []*telemetry.Alarm
	var devs []*telemetry.DeviceEvent
	for _, e := range evs {
		switch v := e.(type) {
		case *telemetry.Alarm:
			alarms = append(alarms, v)
		case *telemetry.DeviceEvent:
			devs = append(devs, v)
		}
	}
	if len(alarms) != 2 || alarms[0].Channel != al.Channel || alarms[1].Channel != (telemetry.Channel{}) {
		t.Errorf("alarms %+v", alarms)
	}
	if len(devs) != 1 || devs[0].State != telemetry.DeviceSensorOff || devs[0].Channel.ID != "T2" {
		t.Errorf("device events %+v", devs)
	}
	if !strings.Contains(string(EncodeORU(Header{}, nums[2:3], nil)), "|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.1|") {
		t.Error("a value without a channel does not get the MDS-level OBX-4 PCD-01 receivers expect")
	}
	if !strings.Contains(string(EncodeORU(Header{}, nums[1:2], nil)), "|||^SKIN\\F\\2") {
		t.Error("a label with a field separator is not escaped")
	}
}

// TestMDILCodeOutsideTheLabelTable: a Philips MDIL row whose label the box does not know
// keeps the code its identifier spells (partition 2, term 0x4BB0: MDC_PULS_OXIM_PERF_REL)
// and a label-only unknown keeps the message's label as its name.
func TestMDILCodeOutsideTheLabelTable(t *testing.T) {
	msg := "MSH|^~\\&|0361^EfficiaCM||||20140510124500||ORU^R01|1|P|2.4\r" +
		"OBX||NM|0002-4bb0^Perf^MDIL||2.3|0004-0220^%^MDIL|||||R\r" +
		"OBX||NM|0002-f0e5^ST-X^MDIL||0.1|0004-10b2^mV^MDIL|||||R\r"
	m, err := Parse([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	res := Decode(m, time.Now(), time.UTC)
	if len(res.Events) != 2 {
		t.Fatalf("events %v, ignored %s", res.Events, res.FirstProb)
	}
	perf, other := res.Events[0].(*telemetry.Numeric), res.Events[1].(*telemetry.Numeric)
	if perf.Code != telemetry.MDC_PULS_OXIM_PERF_REL || perf.Value != 2.3 || perf.Unit != "%" {
		t.Errorf("Perf = %s %v %s", perf.Code, perf.Value, perf.Unit)
	}
	if telemetry.NameOf(other.Code, other.Ref) != "ST-X" || other.Code != 0x2F0E5 || other.Unit != "mV" {
		t.Errorf("unknown MDIL row = %s (%d) %v %s", telemetry.NameOf(other.Code, other.Ref), other.Code, other.Value, other.Unit)
	}
}
