package intellivue

import (
	"encoding/json"
	"testing"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/telemetrytest"
)

// Physio ids of the Philips nomenclature used below (NOM_PART_SCADA).
const (
	nomTempEsoph   uint16 = 0x4B64 // NOM_TEMP_ESOPH
	nomO2Insp      uint16 = 0x5284 // NOM_CONC_AWAY_O2_INSP
	nomSevoET      uint16 = 0x5220 // NOM_CONC_AWAY_SEVOFL_ET
	nomSvO2        uint16 = 0x4B3C // NOM_SAT_O2_VEN
	nomCO          uint16 = 0x4B04 // NOM_OUTPUT_CARD
	nomICPMean     uint16 = 0x580B // NOM_PRESS_INTRA_CRAN_MEAN
	nomSTII        uint16 = 0x0302 // NOM_ECG_AMPL_ST_II
	nomSTMCL       uint16 = 0x034B // NOM_ECG_AMPL_ST_MCL: not in mdc.go
	dimLitrePerMin uint16 = 0x0C00 // NOM_DIM_X_L_PER_MIN
)

func numericObject(handle, physio, unit uint16, v Float, label string) ObservationPoll {
	attrs := []AVA{{AttrType, typeValue(PartSCADA, physio)}, {AttrNuValObs, NuObs{PhysioID: physio, Unit: unit, Value: v}.Encode()}}
	if label != "" {
		attrs = append(attrs, AVA{AttrLabelString, EncodeString(label)})
	}
	return ObservationPoll{Handle: handle, Attrs: attrs}
}

// pollThrough runs a poll result through the driver's decoding as it arrives on the
// wire (encoded and parsed), and returns what reached the sink.
func pollThrough(t *testing.T, class uint16, objs ...ObservationPoll) []telemetry.Event {
	t.Helper()
	r := PollReply{ObjClass: class, Contexts: []ContextPoll{{Objects: objs}}}
	back, err := ParsePollReply(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	sink := &telemetrytest.Sink{}
	c := newConn(New(Config{}), nil, sink)
	c.results(back, time.Unix(1_700_000_000, 0))
	return sink.Events()
}

// TestEveryNumericReachesTheBus: gases, agents, SvO2, CO, ICP and ST values reach the
// bus under their MDC names and UCUM units, the same physio id on two handles stays two
// values with the monitor's labels, and an id mdc.go lacks comes out under the label the
// monitor shows for it.
func TestEveryNumericReachesTheBus(t *testing.T) {
	evs := pollThrough(t, ClassNumeric,
		numericObject(0x0101, NomTemp, DimDegC, MakeFloat(37.1, 1), "T1"),
		numericObject(0x0102, NomTemp, DimDegC, MakeFloat(36.5, 1), "T2"),
		numericObject(0x0103, nomTempEsoph, DimDegC, MakeFloat(36.9, 1), "Tesoph"),
		numericObject(0x0110, nomO2Insp, DimPercent, MakeFloat(21, 0), "inO2"),
		numericObject(0x0111, nomSevoET, DimPercent, MakeFloat(1.8, 1), "etSEV"),
		numericObject(0x0112, nomSvO2, DimPercent, MakeFloat(72, 0), "SvO2"),
		numericObject(0x0113, nomCO, dimLitrePerMin, MakeFloat(5.2, 1), "C.O."),
		numericObject(0x0114, nomICPMean, DimMMHg, MakeFloat(12, 0), "ICP"),
		numericObject(0x0115, nomSTII, DimMilliVolt, MakeFloat(-0.1, 1), "ST-II"),
		numericObject(0x0116, nomSTMCL, DimMilliVolt, MakeFloat(0.2, 1), "ST-MCL"),
		numericObject(0x0117, NomSpO2, DimPercent, FloatNaN, "SpO2"), // no value: nothing published
	)
	type row struct {
		name, unit, channel, label string
		value                      float64
	}
	var got []row
	for _, e := range evs {
		if n, ok := e.(*telemetry.Numeric); ok {
			got = append(got, row{telemetry.NameOf(n.Code, n.Ref), n.Unit, n.Channel.ID, n.Channel.Label, n.Value})
		}
	}
	want := []row{
		{"MDC_TEMP", "Cel", "0x0101", "T1", 37.1}, {"MDC_TEMP", "Cel", "0x0102", "T2", 36.5},
		{"MDC_TEMP_ESOPH", "Cel", "0x0103", "Tesoph", 36.9}, {"MDC_CONC_AWAY_O2_INSP", "%", "0x0110", "inO2", 21},
		{"MDC_CONC_AWAY_SEVOFL_ET", "%", "0x0111", "etSEV", 1.8}, {"MDC_SAT_O2_VEN", "%", "0x0112", "SvO2", 72},
		{"MDC_OUTPUT_CARD", "L/min", "0x0113", "C.O.", 5.2}, {"MDC_PRESS_INTRA_CRAN_MEAN", "mm[Hg]", "0x0114", "ICP", 12},
		{"MDC_ECG_AMPL_ST_II", "mV", "0x0115", "ST-II", -0.1}, {"ST-MCL", "mV", "0x0116", "ST-MCL", 0.2},
	}
	if len(got) != len(want) {
		t.Fatalf("numerics\n got %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("numeric %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestValuesHaveNoBinaryNoise: the MP70's perfusion index, mantissa 23 and exponent -1,
// is 2.3 in JSON, not 2.3000000000000003.
func TestValuesHaveNoBinaryNoise(t *testing.T) {
	evs := pollThrough(t, ClassNumeric, numericObject(0x0120, NomPerfRel, DimPercent, Float(0xFF000017), "Perf"))
	if len(evs) != 1 {
		t.Fatalf("events %v", evs)
	}
	data, err := json.Marshal(evs[0].(*telemetry.Numeric).Value)
	if err != nil || string(data) != "2.3" {
		t.Errorf("perfusion index encodes as %s (%v), want 2.3", data, err)
	}
	for _, c := range []struct {
		f    Float
		want string
	}{{0xFF000174, "37.2"}, {0xFE0003E7, "9.99"}, {0xFD000001, "0.001"}, {0x01000005, "50"}} {
		v, _ := c.f.Value()
		if data, _ := json.Marshal(v); string(data) != c.want {
			t.Errorf("%#08x = %s, want %s", uint32(c.f), data, c.want)
		}
	}
}

// TestLeadOffAndSensorOffFromINOPs: technical alarms about a lead or a sensor become
// device events with the channel of the measurement they name, raised and cleared.
func TestLeadOffAndSensorOffFromINOPs(t *testing.T) {
	sink := &telemetrytest.Sink{}
	c := newConn(New(Config{}), nil, sink)
	at := time.Unix(1_700_000_000, 0)
	spo2 := numericObject(0x0050, NomSpO2, DimPercent, MakeFloat(97, 0), "SpO2")
	c.results(PollReply{ObjClass: ClassNumeric, Contexts: []ContextPoll{{Objects: []ObservationPoll{spo2}}}}, at)
	alerts := func(list ...DevAlarm) {
		o := ObservationPoll{Handle: 1, Attrs: []AVA{{AttrAlarmsT, EncodeAlarmList(list)}}}
		r := PollReply{ObjClass: ClassAlertMon, Contexts: []ContextPoll{{Objects: []ObservationPoll{o}}}}
		back, err := ParsePollReply(r.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		c.results(back, at)
	}
	leads := DevAlarm{Source: NomECGHeartRate, Type: AlarmMedT, Object: ObjectID{Class: ClassNumeric, Handle: 0x0040}, Text: "LEADS OFF"}
	probe := DevAlarm{Source: NomSpO2, Type: AlarmLowT, Text: "SpO2 SENSOR OFF"}
	alerts(leads, probe)
	alerts(probe)
	var devs []*telemetry.DeviceEvent
	for _, e := range sink.Events() {
		if d, ok := e.(*telemetry.DeviceEvent); ok {
			devs = append(devs, d)
		}
	}
	want := map[telemetry.DeviceState]string{telemetry.DeviceLeadOff: "0x0040", telemetry.DeviceSensorOff: "0x0050", telemetry.DeviceSensorOn: "0x0040"}
	if len(devs) != 3 {
		t.Fatalf("device events %+v", devs)
	}
	for _, d := range devs {
		if want[d.State] != d.Channel.ID {
			t.Errorf("%s on %+v, want channel %s", d.State, d.Channel, want[d.State])
		}
	}
	if devs[len(devs)-1].State != telemetry.DeviceSensorOn || devs[len(devs)-1].Code != telemetry.MDC_ECG_HEART_RATE {
		t.Errorf("the leads coming back: %+v", devs[len(devs)-1])
	}
}

// TestNumericWithUnknownUnitIsNotPublished: the one numeric the driver decodes and
// deliberately keeps off the bus is one whose unit the model cannot name (here mbar,
// NOM_DIM_MILLI_BAR 0x0F72): a number without a readable unit would mislead.
func TestNumericWithUnknownUnitIsNotPublished(t *testing.T) {
	evs := pollThrough(t, ClassNumeric,
		numericObject(0x0130, 0x5109, 0x0F72, MakeFloat(20, 0), "PIP"),
		numericObject(0x0131, 0x5109, 0x0F40, MakeFloat(20, 0), "PIP"), // cmH2O: published
	)
	if len(evs) != 1 {
		t.Fatalf("events %+v, want only the cmH2O one", evs)
	}
	if n := evs[0].(*telemetry.Numeric); n.Code != telemetry.MDC_PRESS_AWAY_INSP_MAX || n.Unit != "cm[H2O]" || n.Channel.ID != "0x0131" {
		t.Errorf("published %s %s on %+v", n.Code, n.Unit, n.Channel)
	}
}
