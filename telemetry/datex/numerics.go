package datex

import (
	"fmt"
	"time"

	"lifeline/telemetry"
)

// What the basic class means, group by group, was read from the measures table of the
// pyCollect S/5 tool (scales, label and status bits; see testdata/README.md) and checked
// against the S/5 capture; the codes are those of telemetry/mdc.go.

// Status bits of the ECG group header beyond GroupExists and GroupActive.
const (
	ecgStatusHRSourceShift = 3       // bits 3-6: the displayed HR's source
	ecgStatusLeadOff1      = 1 << 11 // bits 11-13: ECG channel 1, 2, 3 off (a lead is off)
)

// HR sources of the displayed heart rate (ECG status bits 3-6).
var hrSources = map[uint32]string{0: "", 1: "ECG", 2: "P1", 3: "P2", 4: "P3", 5: "P4", 6: "SpO2", 7: "P5", 8: "P6"}

// ecgLeads are the leads an ECG channel can show (4 bits each of the ECG group label);
// "V" is a chest lead the record does not say more about.
var ecgLeads = map[uint16]struct {
	name string
	code telemetry.Code
}{
	1: {"I", telemetry.MDC_ECG_ELEC_POTL_I}, 2: {"II", telemetry.MDC_ECG_ELEC_POTL_II}, 3: {"III", telemetry.MDC_ECG_ELEC_POTL_III},
	4: {"aVR", telemetry.MDC_ECG_ELEC_POTL_AVR}, 5: {"aVL", telemetry.MDC_ECG_ELEC_POTL_AVL}, 6: {"aVF", telemetry.MDC_ECG_ELEC_POTL_AVF},
	7: {"V", 0},
}

// Temperature sites (label of a temperature group).
var tempSites = map[uint16]struct {
	name string
	code telemetry.Code
}{
	1: {"ESO", telemetry.MDC_TEMP_ESOPH}, 2: {"NASO", telemetry.MDC_TEMP_NASOPH}, 3: {"TYMP", telemetry.MDC_TEMP_TYMP},
	4: {"RECT", telemetry.MDC_TEMP}, 5: {"BLAD", telemetry.MDC_TEMP}, 6: {"AXIL", telemetry.MDC_TEMP},
	7: {"SKIN", telemetry.MDC_TEMP_SKIN}, 8: {"AIRW", telemetry.MDC_TEMP_AWAY}, 9: {"ROOM", telemetry.MDC_TEMP},
	10: {"MYO", telemetry.MDC_TEMP}, 11: {"T1", telemetry.MDC_TEMP}, 12: {"T2", telemetry.MDC_TEMP},
	13: {"T3", telemetry.MDC_TEMP}, 14: {"T4", telemetry.MDC_TEMP}, 15: {"CORE", telemetry.MDC_TEMP_CORE},
	16: {"SURF", telemetry.MDC_TEMP},
}

// pressureSet is what an invasive pressure channel publishes for its site label.
type pressureSet struct {
	name           string // the label the monitor shows
	sys, dia, mean telemetry.Code
	arterial       bool // its pulse rate is an arterial one: primary among pulse rates
	wave           telemetry.Code
}

var generic = pressureSet{"", telemetry.MDC_PRESS_BLD_SYS, telemetry.MDC_PRESS_BLD_DIA, telemetry.MDC_PRESS_BLD_MEAN, false, telemetry.MDC_PRESS_BLD}

var pressureSites = map[uint16]pressureSet{
	PressART:   {"ART", telemetry.MDC_PRESS_BLD_ART_SYS, telemetry.MDC_PRESS_BLD_ART_DIA, telemetry.MDC_PRESS_BLD_ART_MEAN, true, telemetry.MDC_PRESS_BLD_ART},
	PressABP:   {"ABP", telemetry.MDC_PRESS_BLD_ART_ABP_SYS, telemetry.MDC_PRESS_BLD_ART_ABP_DIA, telemetry.MDC_PRESS_BLD_ART_ABP_MEAN, true, telemetry.MDC_PRESS_BLD_ART_ABP},
	PressPA:    {"PA", telemetry.MDC_PRESS_BLD_ART_PULM_SYS, telemetry.MDC_PRESS_BLD_ART_PULM_DIA, telemetry.MDC_PRESS_BLD_ART_PULM_MEAN, false, telemetry.MDC_PRESS_BLD_ART_PULM},
	PressCVP:   {"CVP", telemetry.MDC_PRESS_BLD_VEN_CENT_SYS, telemetry.MDC_PRESS_BLD_VEN_CENT_DIA, telemetry.MDC_PRESS_BLD_VEN_CENT_MEAN, false, telemetry.MDC_PRESS_BLD_VEN_CENT},
	PressRAP:   {"RAP", telemetry.MDC_PRESS_BLD_ATR_RIGHT_SYS, telemetry.MDC_PRESS_BLD_ATR_RIGHT_DIA, telemetry.MDC_PRESS_BLD_ATR_RIGHT_MEAN, false, telemetry.MDC_PRESS_BLD_ATR_RIGHT},
	PressLAP:   {"LAP", telemetry.MDC_PRESS_BLD_ATR_LEFT_SYS, telemetry.MDC_PRESS_BLD_ATR_LEFT_DIA, telemetry.MDC_PRESS_BLD_ATR_LEFT_MEAN, false, telemetry.MDC_PRESS_BLD_ATR_LEFT},
	PressICP:   {"ICP", telemetry.MDC_PRESS_INTRA_CRAN_SYS, telemetry.MDC_PRESS_INTRA_CRAN_DIA, telemetry.MDC_PRESS_INTRA_CRAN_MEAN, false, telemetry.MDC_PRESS_INTRA_CRAN},
	PressUAC:   {"UAC", telemetry.MDC_PRESS_BLD_ART_UMB_SYS, telemetry.MDC_PRESS_BLD_ART_UMB_DIA, telemetry.MDC_PRESS_BLD_ART_UMB_MEAN, true, telemetry.MDC_PRESS_BLD_ART_UMB},
	PressUVC:   {"UVC", telemetry.MDC_PRESS_BLD_VEN_UMB_SYS, telemetry.MDC_PRESS_BLD_VEN_UMB_DIA, telemetry.MDC_PRESS_BLD_VEN_UMB_MEAN, false, telemetry.MDC_PRESS_BLD_VEN_UMB},
	PressPAWed: {"PAWP", telemetry.MDC_PRESS_BLD_SYS, telemetry.MDC_PRESS_BLD_DIA, telemetry.MDC_PRESS_BLD_ART_PULM_WEDGE, false, telemetry.MDC_PRESS_BLD},
	// RVP, FEM and the generic P1…P6 labels have no site code: they are published as
	// MDC_PRESS_BLD_* with the label the monitor shows as the channel label.
	PressRVP: {"RVP", generic.sys, generic.dia, generic.mean, false, generic.wave},
	PressFEM: {"FEM", generic.sys, generic.dia, generic.mean, true, generic.wave},
}

// pressureSite returns the set of channel i (0 for P1) for the label it reports.
func pressureSite(i int, label uint16) pressureSet {
	if s, ok := pressureSites[label]; ok {
		return s
	}
	s := generic
	s.name = fmt.Sprintf("P%d", i+1)
	return s
}

// Anaesthetic agents (label of the AA group).
var agents = map[uint16]struct {
	name    string
	et, ins telemetry.Code
}{
	2: {"HAL", telemetry.MDC_CONC_AWAY_HALOTH_ET, telemetry.MDC_CONC_AWAY_HALOTH_IN},
	3: {"ENF", telemetry.MDC_CONC_AWAY_ENFL_ET, telemetry.MDC_CONC_AWAY_ENFL_INSP},
	4: {"ISO", telemetry.MDC_CONC_AWAY_ISOFL_ET, telemetry.MDC_CONC_AWAY_ISOFL_INSP},
	5: {"DES", telemetry.MDC_CONC_AWAY_DESFL_ET, telemetry.MDC_CONC_AWAY_DESFL_INSP},
	6: {"SEV", telemetry.MDC_CONC_AWAY_SEVOFL_ET, telemetry.MDC_CONC_AWAY_SEVOFL_IN},
}

// NotPublished lists the fields of the basic class the driver decodes but deliberately
// does not put on the bus, with the reason. Every other field reaches the bus when the
// monitor sends a value (TestEveryBasicFieldIsPublishedOrListed).
var NotPublished = map[string]string{
	"SpO2.IRAmp":      "the pleth modulation is a signal-quality indicator for the monitor's own display; no cross-checked MDC code",
	"CO2.AmbPress":    "the ambient pressure is not a patient value; it converts the gas fractions to the partial pressures that are published",
	"FlowVol.TVInsp":  "no 11073 code found for the inspired tidal volume; the expired one is published as MDC_VOL_AWAY_TIDAL",
	"COWedge.RightEF": "no cross-checked MDC code for the right-ventricular ejection fraction",
	"NMT.*":           "neuromuscular transmission (T1%, TOF ratio, PTC) is anaesthesia depth data outside the vitals model",
	"ECGExtra.HRMax":  "the maximum over the monitor's own trend window, not a current value",
	"ECGExtra.HRMin":  "the minimum over the monitor's own trend window, not a current value",
}

// numerics turns one displayed-values subrecord into events. Invalid and absent values
// (the special values below -32000) are never published as numbers.
func (s *session) numerics(p Phdb, now time.Time) {
	b := p.Basic
	emit := func(code telemetry.Code, raw int16, scale float64, decimals int, unit string, ch telemetry.Channel) {
		if !Valid(raw) || code == 0 {
			return
		}
		s.out.Emit(&telemetry.Numeric{Code: code, Value: telemetry.Decimal(float64(raw)*scale, decimals), Unit: unit,
			Channel: ch, MonitorTime: p.Time, ReceiveTime: now})
	}
	s.ecg(b, emit, now)
	for i := range b.P {
		s.pressure(i, &b.P[i], emit)
	}
	s.nibpValues(b, p, now)
	for i := range b.T {
		t := &b.T[i]
		site, ok := tempSites[t.Label]
		ch := telemetry.Channel{ID: fmt.Sprintf("T%d", i+1), Label: site.name}
		if !ok {
			site.code, ch.Label = telemetry.MDC_TEMP, ch.ID
		}
		emit(site.code, t.Temp, 0.01, 2, telemetry.UnitCelsius, ch)
	}
	spo2 := telemetry.Channel{ID: "SpO2", Label: "SpO2"}
	emit(telemetry.MDC_PULS_OXIM_SAT_O2, b.SpO2.SpO2, 0.01, 2, telemetry.UnitPercent, spo2)
	emit(telemetry.MDC_PULS_OXIM_PULS_RATE, b.SpO2.PR, 1, 0, telemetry.UnitPerMinute, spo2)
	// The fourth SpO2 value is SO2, SaO2 or SvO2 as the group's label says.
	so2 := map[uint16]struct {
		code telemetry.Code
		name string
	}{0: {telemetry.MDC_SAT_O2, "SO2"}, 1: {telemetry.MDC_SAT_O2_ART, "SaO2"}, 2: {telemetry.MDC_SAT_O2_VEN, "SvO2"}}[b.SpO2.Label&0x3]
	emit(so2.code, b.SpO2.SvO2, 0.01, 2, telemetry.UnitPercent, telemetry.Channel{ID: "SpO2-" + so2.name, Label: so2.name})
	s.gases(b, emit)
	// Spirometry (the D-lite flow sensor) on its own channel: its respiration rate is
	// an airway rate like the capnograph's, and the two stay apart by channel.
	spiro := telemetry.Channel{ID: "FlowVol", Label: "Spiro"}
	f := &b.FlowVol
	emit(telemetry.MDC_AWAY_RESP_RATE, f.RR, 1, 0, telemetry.UnitPerMinute, spiro)
	emit(telemetry.MDC_PRESS_AWAY_INSP_MAX, f.PPeak, 0.01, 2, telemetry.UnitCmH2O, spiro)
	emit(telemetry.MDC_VENT_PRESS_AWAY_END_EXP_POS, f.PEEP, 0.01, 2, telemetry.UnitCmH2O, spiro)
	emit(telemetry.MDC_PRESS_RESP_PLAT, f.PPlat, 0.01, 2, telemetry.UnitCmH2O, spiro)
	emit(telemetry.MDC_VOL_AWAY_TIDAL, f.TVExp, 0.1, 1, telemetry.UnitMilliLitre, spiro)
	emit(telemetry.MDC_COMPL_LUNG, f.Compliance, 0.01, 2, telemetry.UnitMilliLitrePerCm, spiro)
	emit(telemetry.MDC_VOL_MINUTE_AWAY_EXP, f.MVExp, 0.01, 2, telemetry.UnitLitrePerMinute, spiro)
	co := telemetry.Channel{ID: "CO-WEDGE", Label: "C.O."}
	emit(telemetry.MDC_OUTPUT_CARD, b.COWedge.CO, 0.001, 3, telemetry.UnitLitrePerMinute, co) // sent in ml/min
	if Valid(b.COWedge.BloodTemp) {
		// Every other temperature of the record is in 1/100 °C; a blood temperature
		// outside what a body can have means the scale was misread: not published.
		if v := float64(b.COWedge.BloodTemp) * 0.01; v >= 15 && v <= 45 {
			emit(telemetry.MDC_TEMP, b.COWedge.BloodTemp, 0.01, 2, telemetry.UnitCelsius, telemetry.Channel{ID: "Tblood", Label: "Tblood"})
		} else {
			s.noteUnmapped(fmt.Sprintf("blood temperature %d out of range", b.COWedge.BloodTemp))
		}
	}
	emit(telemetry.MDC_PRESS_BLD_ART_PULM_WEDGE, b.COWedge.PCWP, 0.01, 2, telemetry.UnitMMHg, telemetry.Channel{ID: "CO-WEDGE", Label: "PCWP"})
	emit(telemetry.MDC_SAT_O2_VEN, b.SvO2.SvO2, 0.01, 2, telemetry.UnitPercent, telemetry.Channel{ID: "SvO2", Label: "SvO2"})
}

type emitFunc func(code telemetry.Code, raw int16, scale float64, decimals int, unit string, ch telemetry.Channel)

// ecg publishes the displayed HR, the ECG-derived HR, ST levels and the impedance
// respiration rate, and raises lead-off events from the group's channel-off bits.
func (s *session) ecg(b *Basic, emit emitFunc, now time.Time) {
	src := hrSources[(b.ECG.Status>>ecgStatusHRSourceShift)&0xF]
	// The displayed HR is the one the monitor marks as its heart rate; when its
	// source is not the ECG, the ECG-derived rate (ecg_extra) is the primary one.
	fromECG := src == "ECG" || src == ""
	label := "HR"
	if src != "" && src != "ECG" {
		label = "HR(" + src + ")"
	}
	emit(telemetry.MDC_ECG_HEART_RATE, b.ECG.HR, 1, 0, telemetry.UnitPerMinute, telemetry.Channel{ID: "HR", Label: label, Primary: fromECG})
	emit(telemetry.MDC_ECG_HEART_RATE, b.ECGExtra.HR, 1, 0, telemetry.UnitPerMinute, telemetry.Channel{ID: "HR-ECG", Label: "HR(ECG)", Primary: !fromECG})
	for i, st := range []int16{b.ECG.ST1, b.ECG.ST2, b.ECG.ST3} {
		lead := ecgLeads[(b.ECG.Label>>(4*i))&0xF]
		code := telemetry.STFor(lead.code)
		// ST comes in 1/100 mm at the standard gain of 10 mm/mV: 1/1000 mV.
		emit(code, st, 0.001, 3, telemetry.UnitMilliVolt, telemetry.Channel{ID: fmt.Sprintf("ST%d", i+1), Label: "ST " + lead.name})
	}
	emit(telemetry.MDC_TTHOR_RESP_RATE, b.ECG.ImpRR, 1, 0, telemetry.UnitPerMinute, telemetry.Channel{ID: "ECG", Label: "Imped."})
	if !b.ECG.Present() {
		return
	}
	s.ecgLabel = b.ECG.Label
	for i := 0; i < 3; i++ {
		off := b.ECG.Status&(ecgStatusLeadOff1<<i) != 0
		if off == s.leadOff[i] {
			continue
		}
		s.leadOff[i] = off
		lead := ecgLeads[(b.ECG.Label>>(4*i))&0xF]
		ch := telemetry.Channel{ID: fmt.Sprintf("ECG%d", i+1), Label: lead.name}
		ev := &telemetry.DeviceEvent{State: telemetry.DeviceLeadOff, Code: lead.code, Channel: ch, ReceiveTime: now,
			Detail: fmt.Sprintf("ECG channel %d (lead %s) off", i+1, lead.name)}
		if !off {
			ev.State, ev.Detail = telemetry.DeviceSensorOn, fmt.Sprintf("ECG channel %d (lead %s) back on", i+1, lead.name)
		}
		s.out.Emit(ev)
	}
}

func (s *session) pressure(i int, p *Pressure, emit emitFunc) {
	if !p.Present() {
		return
	}
	s.labels[i] = p.Label
	site := pressureSite(i, p.Label)
	ch := telemetry.Channel{ID: fmt.Sprintf("P%d", i+1), Label: site.name}
	emit(site.sys, p.Sys, 0.01, 2, telemetry.UnitMMHg, ch)
	emit(site.dia, p.Dia, 0.01, 2, telemetry.UnitMMHg, ch)
	emit(site.mean, p.Mean, 0.01, 2, telemetry.UnitMMHg, ch)
	rate := ch
	rate.Primary = site.arterial
	emit(telemetry.MDC_BLD_PULS_RATE_INV, p.HR, 1, 0, telemetry.UnitPerMinute, rate)
}

func (s *session) nibpValues(b *Basic, p Phdb, now time.Time) {
	ch := telemetry.Channel{ID: "NIBP", Label: "NIBP"}
	if Valid(b.NIBP.Sys) && Valid(b.NIBP.Dia) && Valid(b.NIBP.Mean) {
		triple := [3]int16{b.NIBP.Sys, b.NIBP.Dia, b.NIBP.Mean}
		// The displayed NIBP stays on screen until the next cuff cycle; the first
		// record showing a new triple is the best measurement time the records give.
		if triple != s.nibp || s.nibpAt.IsZero() {
			s.nibp, s.nibpAt = triple, p.Time
		}
		for _, n := range (telemetry.NIBP{Sys: telemetry.Decimal(float64(triple[0])*0.01, 2), Dia: telemetry.Decimal(float64(triple[1])*0.01, 2),
			Mean: telemetry.Decimal(float64(triple[2])*0.01, 2), Unit: telemetry.UnitMMHg, Measured: s.nibpAt, MonitorTime: p.Time, ReceiveTime: now}).Numerics() {
			n.Channel = ch
			s.out.Emit(n)
		}
	}
	if Valid(b.NIBP.HR) {
		s.out.Emit(&telemetry.Numeric{Code: telemetry.MDC_PULS_RATE, Value: float64(b.NIBP.HR), Unit: telemetry.UnitPerMinute,
			Channel: ch, MonitorTime: p.Time, ReceiveTime: now, Measured: s.nibpAt})
	}
}

// gases publishes CO2 as partial pressures (the fractions times the monitor's ambient
// pressure), O2, N2O and the agent as fractions in %, and the MAC sum.
func (s *session) gases(b *Basic, emit emitFunc) {
	if Valid(b.CO2.AmbPress) {
		s.ambient = b.CO2.AmbPress
	}
	co2 := telemetry.Channel{ID: "CO2", Label: "CO2"}
	if Valid(s.ambient) {
		// Fractions come in 1/100 %, the ambient pressure in 1/10 mmHg:
		// p = f/100 % × Pamb, shown to 0.1 mmHg.
		mmHg := 0.01 / 100 * float64(s.ambient) * 0.1
		emit(telemetry.MDC_AWAY_CO2_ET, b.CO2.Et, mmHg, 1, telemetry.UnitMMHg, co2)
		emit(telemetry.MDC_AWAY_CO2_INSP_MIN, b.CO2.Fi, mmHg, 1, telemetry.UnitMMHg, co2)
	} else {
		emit(telemetry.MDC_AWAY_CO2_ET, b.CO2.Et, 0.01, 2, telemetry.UnitPercent, co2)
		emit(telemetry.MDC_AWAY_CO2_INSP_MIN, b.CO2.Fi, 0.01, 2, telemetry.UnitPercent, co2)
	}
	// The CO2 group's respiration rate comes from the source its label selects.
	rr, rrLabel := telemetry.MDC_AWAY_RESP_RATE, "RR(CO2)"
	if b.CO2.Label&0x7 == 2 {
		rr, rrLabel = telemetry.MDC_TTHOR_RESP_RATE, "RR(Imped.)"
	}
	emit(rr, b.CO2.RR, 1, 0, telemetry.UnitPerMinute, telemetry.Channel{ID: "CO2", Label: rrLabel})
	o2 := telemetry.Channel{ID: "O2", Label: "O2"}
	emit(telemetry.MDC_CONC_AWAY_O2_ET, b.O2.Et, 0.01, 2, telemetry.UnitPercent, o2)
	emit(telemetry.MDC_CONC_AWAY_O2_INSP, b.O2.Fi, 0.01, 2, telemetry.UnitPercent, o2)
	n2o := telemetry.Channel{ID: "N2O", Label: "N2O"}
	emit(telemetry.MDC_CONC_AWAY_N2O_ET, b.N2O.Et, 0.01, 2, telemetry.UnitPercent, n2o)
	emit(telemetry.MDC_CONC_AWAY_N2O_INSP, b.N2O.Fi, 0.01, 2, telemetry.UnitPercent, n2o)
	agent, ok := agents[b.AA.Label]
	if !ok {
		agent.name, agent.et, agent.ins = "AA", telemetry.MDC_CONC_AWAY_AGENT_ET, telemetry.MDC_CONC_AWAY_AGENT_INSP
	}
	aa := telemetry.Channel{ID: "AA", Label: agent.name}
	emit(agent.et, b.AA.Et, 0.01, 2, telemetry.UnitPercent, aa)
	emit(agent.ins, b.AA.Fi, 0.01, 2, telemetry.UnitPercent, aa)
	emit(telemetry.NOM_CONC_AWAY_SUM_MAC_ET, b.AA.MACSum, 0.01, 2, telemetry.UnitNone, telemetry.Channel{ID: "AA", Label: "MAC"})
}
