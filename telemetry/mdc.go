package telemetry

import (
	"fmt"
	"strings"
)

// Code is an IEEE 11073-10101 context-free code: the partition in the high 16 bits and the
// term code in the low 16 bits. HL7 PCD-01 carries it in OBX-3 (e.g. 150456 for
// MDC_PULS_OXIM_SAT_O2 = partition 2, term 19384).
type Code uint32

// Partition returns the nomenclature partition (2 = SCADA metrics, 4 = dimensions).
func (c Code) Partition() uint16 { return uint16(c >> 16) }

// Term returns the term code within the partition.
func (c Code) Term() uint16 { return uint16(c) }

// Name returns the reference identifier (e.g. "MDC_ECG_HEART_RATE"), or "MDC_CODE_<n>" for a
// code that is not in the table, so that an unknown code still prints as something an
// engineer can look up.
func (c Code) Name() string {
	if q, ok := byCode[c]; ok {
		return q.Name
	}
	return fmt.Sprintf("MDC_CODE_%d", uint32(c))
}

func (c Code) String() string { return c.Name() }

// Quantity describes one measured quantity: its MDC code, reference id, the UCUM unit the
// model carries it in, and whether it is a waveform.
type Quantity struct {
	Code Code
	Name string // MDC reference id, e.g. MDC_PULS_OXIM_SAT_O2
	Unit string // UCUM unit, e.g. "%", "/min", "mm[Hg]", "mV"
	Wave bool   // true for sampled signals (ECG leads, pleth, resp, CO2, IBP)
	// Label is the short name clinicians read on the monitor (HR, SpO2, NIBPs, II, Pleth).
	Label string
}

// The quantities Lifeline models. Codes are partition*65536 + term code. Codes marked
// "cross-checked" appear with the same number in published PCD-01 messages of monitors
// (Mindray eGateway, GE, IHE examples); the others are taken from the 11073-10101 tables
// as known to us and should be checked against the standard when one is at hand.
const (
	MDC_ECG_HEART_RATE            Code = 147842 // cross-checked
	MDC_ECG_V_P_C_RATE            Code = 148066 // cross-checked
	MDC_PULS_OXIM_SAT_O2          Code = 150456 // cross-checked
	MDC_PULS_OXIM_PULS_RATE       Code = 149530 // cross-checked
	MDC_PULS_OXIM_PERF_REL        Code = 150448 // term 19376, as in the 11073-20601 tables and Philips Data Export
	MDC_BLD_PERF_INDEX            Code = 150488 // cross-checked: what Mindray sends for PI
	MDC_BLD_PULS_RATE_INV         Code = 149522
	MDC_PRESS_BLD_NONINV          Code = 150020
	MDC_PRESS_BLD_NONINV_SYS      Code = 150021 // cross-checked
	MDC_PRESS_BLD_NONINV_DIA      Code = 150022 // cross-checked
	MDC_PRESS_BLD_NONINV_MEAN     Code = 150023 // cross-checked
	MDC_PRESS_BLD_ART             Code = 150032
	MDC_PRESS_BLD_ART_SYS         Code = 150033 // cross-checked (GE B40 PCD-01)
	MDC_PRESS_BLD_ART_DIA         Code = 150034 // cross-checked (GE B40 PCD-01)
	MDC_PRESS_BLD_ART_MEAN        Code = 150035 // cross-checked (GE B40 PCD-01)
	MDC_PRESS_BLD_ART_ABP         Code = 150036
	MDC_PRESS_BLD_ART_ABP_SYS     Code = 150037 // cross-checked (published monitor records)
	MDC_PRESS_BLD_ART_ABP_DIA     Code = 150038
	MDC_PRESS_BLD_ART_ABP_MEAN    Code = 150039
	MDC_PRESS_BLD_ART_PULM        Code = 150044
	MDC_PRESS_BLD_ART_PULM_SYS    Code = 150045
	MDC_PRESS_BLD_ART_PULM_DIA    Code = 150046
	MDC_PRESS_BLD_ART_PULM_MEAN   Code = 150047
	MDC_PRESS_BLD_VEN_CENT        Code = 150084
	MDC_PRESS_BLD_VEN_CENT_MEAN   Code = 150087 // cross-checked
	MDC_RESP_RATE                 Code = 151562
	MDC_TTHOR_RESP_RATE           Code = 151578 // cross-checked
	MDC_AWAY_RESP_RATE            Code = 151594 // cross-checked (also sent as MDC_CO2_RESP_RATE)
	MDC_PULS_OXIM_PLETH_RESP_RATE Code = 151658 // cross-checked
	MDC_AWAY_CO2_ET               Code = 151708
	MDC_AWAY_CO2_INSP_MIN         Code = 151718
	MDC_TEMP                      Code = 150344 // cross-checked
	MDC_TEMP_BODY                 Code = 150364 // cross-checked
	MDC_TEMP_SKIN                 Code = 150388
	MDC_TEMP_ESOPH                Code = 150372 // Philips NOM_TEMP_ESOPH 0x4B64 (was 150376, a number no source backs)
	MDC_ECG_ELEC_POTL_I           Code = 131329 // cross-checked
	MDC_ECG_ELEC_POTL_II          Code = 131330 // cross-checked
	MDC_ECG_ELEC_POTL_V1          Code = 131331 // cross-checked
	MDC_ECG_ELEC_POTL_V2          Code = 131332
	MDC_ECG_ELEC_POTL_V3          Code = 131333
	MDC_ECG_ELEC_POTL_V4          Code = 131334
	MDC_ECG_ELEC_POTL_V5          Code = 131335
	MDC_ECG_ELEC_POTL_V6          Code = 131336
	MDC_ECG_ELEC_POTL_III         Code = 131389
	MDC_ECG_ELEC_POTL_AVR         Code = 131390
	MDC_ECG_ELEC_POTL_AVL         Code = 131391
	MDC_ECG_ELEC_POTL_AVF         Code = 131392
	MDC_PULS_OXIM_PLETH           Code = 150452 // cross-checked
	MDC_IMPED_TTHOR               Code = 151780 // cross-checked (respiration impedance wave)
	MDC_AWAY_CO2                  Code = 151724
)

// UCUM units used by the model.
const (
	UnitPercent    = "%"
	UnitPerMinute  = "/min"
	UnitMMHg       = "mm[Hg]"
	UnitKPa        = "kPa"
	UnitCelsius    = "Cel"
	UnitFahrenheit = "[degF]"
	UnitMilliVolt  = "mV"
	UnitMicroVolt  = "uV"
	UnitOhm        = "Ohm"
	UnitNone       = "1"
	UnitHertz      = "Hz"
)

var quantities = []Quantity{
	{MDC_ECG_HEART_RATE, "MDC_ECG_HEART_RATE", UnitPerMinute, false, "HR"},
	{MDC_ECG_V_P_C_RATE, "MDC_ECG_V_P_C_RATE", UnitPerMinute, false, "PVC"},
	{MDC_PULS_OXIM_SAT_O2, "MDC_PULS_OXIM_SAT_O2", UnitPercent, false, "SpO2"},
	{MDC_PULS_OXIM_PULS_RATE, "MDC_PULS_OXIM_PULS_RATE", UnitPerMinute, false, "PR"},
	{MDC_PULS_OXIM_PERF_REL, "MDC_PULS_OXIM_PERF_REL", UnitPercent, false, "PI"},
	{MDC_BLD_PERF_INDEX, "MDC_BLD_PERF_INDEX", UnitPercent, false, "PI"},
	{MDC_BLD_PULS_RATE_INV, "MDC_BLD_PULS_RATE_INV", UnitPerMinute, false, "PR(IBP)"},
	{MDC_PRESS_BLD_NONINV, "MDC_PRESS_BLD_NONINV", UnitMMHg, false, "NIBP"},
	{MDC_PRESS_BLD_NONINV_SYS, "MDC_PRESS_BLD_NONINV_SYS", UnitMMHg, false, "NIBPs"},
	{MDC_PRESS_BLD_NONINV_DIA, "MDC_PRESS_BLD_NONINV_DIA", UnitMMHg, false, "NIBPd"},
	{MDC_PRESS_BLD_NONINV_MEAN, "MDC_PRESS_BLD_NONINV_MEAN", UnitMMHg, false, "NIBPm"},
	{MDC_PRESS_BLD_ART, "MDC_PRESS_BLD_ART", UnitMMHg, true, "ART"},
	{MDC_PRESS_BLD_ART_SYS, "MDC_PRESS_BLD_ART_SYS", UnitMMHg, false, "ARTs"},
	{MDC_PRESS_BLD_ART_DIA, "MDC_PRESS_BLD_ART_DIA", UnitMMHg, false, "ARTd"},
	{MDC_PRESS_BLD_ART_MEAN, "MDC_PRESS_BLD_ART_MEAN", UnitMMHg, false, "ARTm"},
	{MDC_PRESS_BLD_ART_ABP, "MDC_PRESS_BLD_ART_ABP", UnitMMHg, true, "ABP"},
	{MDC_PRESS_BLD_ART_ABP_SYS, "MDC_PRESS_BLD_ART_ABP_SYS", UnitMMHg, false, "ABPs"},
	{MDC_PRESS_BLD_ART_ABP_DIA, "MDC_PRESS_BLD_ART_ABP_DIA", UnitMMHg, false, "ABPd"},
	{MDC_PRESS_BLD_ART_ABP_MEAN, "MDC_PRESS_BLD_ART_ABP_MEAN", UnitMMHg, false, "ABPm"},
	{MDC_PRESS_BLD_ART_PULM, "MDC_PRESS_BLD_ART_PULM", UnitMMHg, true, "PAP"},
	{MDC_PRESS_BLD_ART_PULM_SYS, "MDC_PRESS_BLD_ART_PULM_SYS", UnitMMHg, false, "PAPs"},
	{MDC_PRESS_BLD_ART_PULM_DIA, "MDC_PRESS_BLD_ART_PULM_DIA", UnitMMHg, false, "PAPd"},
	{MDC_PRESS_BLD_ART_PULM_MEAN, "MDC_PRESS_BLD_ART_PULM_MEAN", UnitMMHg, false, "PAPm"},
	{MDC_PRESS_BLD_VEN_CENT, "MDC_PRESS_BLD_VEN_CENT", UnitMMHg, true, "CVP"},
	{MDC_PRESS_BLD_VEN_CENT_MEAN, "MDC_PRESS_BLD_VEN_CENT_MEAN", UnitMMHg, false, "CVPm"},
	{MDC_RESP_RATE, "MDC_RESP_RATE", UnitPerMinute, false, "RR"},
	{MDC_TTHOR_RESP_RATE, "MDC_TTHOR_RESP_RATE", UnitPerMinute, false, "RR"},
	{MDC_AWAY_RESP_RATE, "MDC_AWAY_RESP_RATE", UnitPerMinute, false, "awRR"},
	{MDC_PULS_OXIM_PLETH_RESP_RATE, "MDC_PULS_OXIM_PLETH_RESP_RATE", UnitPerMinute, false, "RR(pleth)"},
	{MDC_AWAY_CO2_ET, "MDC_AWAY_CO2_ET", UnitMMHg, false, "EtCO2"},
	{MDC_AWAY_CO2_INSP_MIN, "MDC_AWAY_CO2_INSP_MIN", UnitMMHg, false, "FiCO2"},
	{MDC_TEMP, "MDC_TEMP", UnitCelsius, false, "T"},
	{MDC_TEMP_BODY, "MDC_TEMP_BODY", UnitCelsius, false, "Tcore"},
	{MDC_TEMP_SKIN, "MDC_TEMP_SKIN", UnitCelsius, false, "Tskin"},
	{MDC_TEMP_ESOPH, "MDC_TEMP_ESOPH", UnitCelsius, false, "Teso"},
	{MDC_ECG_ELEC_POTL_I, "MDC_ECG_ELEC_POTL_I", UnitMilliVolt, true, "I"},
	{MDC_ECG_ELEC_POTL_II, "MDC_ECG_ELEC_POTL_II", UnitMilliVolt, true, "II"},
	{MDC_ECG_ELEC_POTL_III, "MDC_ECG_ELEC_POTL_III", UnitMilliVolt, true, "III"},
	{MDC_ECG_ELEC_POTL_AVR, "MDC_ECG_ELEC_POTL_AVR", UnitMilliVolt, true, "aVR"},
	{MDC_ECG_ELEC_POTL_AVL, "MDC_ECG_ELEC_POTL_AVL", UnitMilliVolt, true, "aVL"},
	{MDC_ECG_ELEC_POTL_AVF, "MDC_ECG_ELEC_POTL_AVF", UnitMilliVolt, true, "aVF"},
	{MDC_ECG_ELEC_POTL_V1, "MDC_ECG_ELEC_POTL_V1", UnitMilliVolt, true, "V1"},
	{MDC_ECG_ELEC_POTL_V2, "MDC_ECG_ELEC_POTL_V2", UnitMilliVolt, true, "V2"},
	{MDC_ECG_ELEC_POTL_V3, "MDC_ECG_ELEC_POTL_V3", UnitMilliVolt, true, "V3"},
	{MDC_ECG_ELEC_POTL_V4, "MDC_ECG_ELEC_POTL_V4", UnitMilliVolt, true, "V4"},
	{MDC_ECG_ELEC_POTL_V5, "MDC_ECG_ELEC_POTL_V5", UnitMilliVolt, true, "V5"},
	{MDC_ECG_ELEC_POTL_V6, "MDC_ECG_ELEC_POTL_V6", UnitMilliVolt, true, "V6"},
	{MDC_PULS_OXIM_PLETH, "MDC_PULS_OXIM_PLETH", UnitNone, true, "Pleth"},
	{MDC_IMPED_TTHOR, "MDC_IMPED_TTHOR", UnitOhm, true, "Resp"},
	{MDC_AWAY_CO2, "MDC_AWAY_CO2", UnitMMHg, true, "CO2"},
}

// aliases maps reference ids that vendors send for a code we know under another name.
var aliases = map[string]Code{
	"MDC_CO2_RESP_RATE":          MDC_AWAY_RESP_RATE,
	"MDC_CONC_AWAY_CO2_ET":       MDC_AWAY_CO2_ET,
	"MDC_AWAY_CO2_INSP":          MDC_AWAY_CO2_INSP_MIN,
	"MDC_CONC_AWAY_CO2_INSP_MIN": MDC_AWAY_CO2_INSP_MIN,
	"MDC_PRESS_CUFF_SYS":         MDC_PRESS_BLD_NONINV_SYS,
	"MDC_PRESS_CUFF_DIA":         MDC_PRESS_BLD_NONINV_DIA,
	"MDC_PRESS_CUFF_MEAN":        MDC_PRESS_BLD_NONINV_MEAN,
	"MDC_ECG_LEAD_I":             MDC_ECG_ELEC_POTL_I,
	"MDC_ECG_LEAD_II":            MDC_ECG_ELEC_POTL_II,
	"MDC_ECG_LEAD_III":           MDC_ECG_ELEC_POTL_III,
	"MDC_ECG_LEAD_AVR":           MDC_ECG_ELEC_POTL_AVR,
	"MDC_ECG_LEAD_AVL":           MDC_ECG_ELEC_POTL_AVL,
	"MDC_ECG_LEAD_AVF":           MDC_ECG_ELEC_POTL_AVF,
	"MDC_ECG_LEAD_V1":            MDC_ECG_ELEC_POTL_V1,
	"MDC_ECG_LEAD_V2":            MDC_ECG_ELEC_POTL_V2,
	"MDC_ECG_LEAD_V3":            MDC_ECG_ELEC_POTL_V3,
	"MDC_ECG_LEAD_V4":            MDC_ECG_ELEC_POTL_V4,
	"MDC_ECG_LEAD_V5":            MDC_ECG_ELEC_POTL_V5,
	"MDC_ECG_LEAD_V6":            MDC_ECG_ELEC_POTL_V6,
}

var (
	byCode = map[Code]Quantity{}
	byName = map[string]Quantity{}
)

func init() {
	quantities = append(quantities, moreQuantities...)
	for _, q := range quantities {
		byCode[q.Code] = q
		byName[q.Name] = q
	}
	for name, c := range aliases {
		byName[name] = byCode[c]
	}
}

// Lookup returns the quantity for a code.
func Lookup(c Code) (Quantity, bool) {
	q, ok := byCode[c]
	return q, ok
}

// LookupName returns the quantity for a reference id such as "MDC_PULS_OXIM_SAT_O2", also
// accepting the vendor aliases Lifeline knows.
func LookupName(name string) (Quantity, bool) {
	q, ok := byName[strings.ToUpper(strings.TrimSpace(name))]
	return q, ok
}

// Quantities returns every quantity in the table, in table order.
func Quantities() []Quantity { return append([]Quantity(nil), quantities...) }

// ECG12 lists the twelve standard leads in the order of a 12-lead report.
var ECG12 = []Code{
	MDC_ECG_ELEC_POTL_I, MDC_ECG_ELEC_POTL_II, MDC_ECG_ELEC_POTL_III,
	MDC_ECG_ELEC_POTL_AVR, MDC_ECG_ELEC_POTL_AVL, MDC_ECG_ELEC_POTL_AVF,
	MDC_ECG_ELEC_POTL_V1, MDC_ECG_ELEC_POTL_V2, MDC_ECG_ELEC_POTL_V3,
	MDC_ECG_ELEC_POTL_V4, MDC_ECG_ELEC_POTL_V5, MDC_ECG_ELEC_POTL_V6,
}

// MDCUnit is a unit of the 11073-10101 dimension partition (4), which PCD-01 puts in OBX-6.
type MDCUnit struct {
	Code Code   // e.g. 262688
	Name string // e.g. MDC_DIM_PERCENT
	UCUM string // e.g. "%"
}

var mdcUnits = []MDCUnit{
	{262656, "MDC_DIM_DIMLESS", UnitNone},
	{262688, "MDC_DIM_PERCENT", UnitPercent},
	{264864, "MDC_DIM_BEAT_PER_MIN", UnitPerMinute},
	{264928, "MDC_DIM_RESP_PER_MIN", UnitPerMinute},
	{266016, "MDC_DIM_MMHG", UnitMMHg},
	{265987, "MDC_DIM_KILO_PASCAL", UnitKPa},
	{268192, "MDC_DIM_DEGC", UnitCelsius},
	{268224, "MDC_DIM_FAHR", UnitFahrenheit},
	{266418, "MDC_DIM_MILLI_VOLT", UnitMilliVolt},
	{266419, "MDC_DIM_MICRO_VOLT", UnitMicroVolt},
	{266432, "MDC_DIM_OHM", UnitOhm},
	{264640, "MDC_DIM_HZ", UnitHertz},
	{265216, "MDC_DIM_X_L_PER_MIN", UnitLitrePerMinute},         // Philips NOM_DIM_X_L_PER_MIN 0x0C00
	{266048, "MDC_DIM_CM_H2O", UnitCmH2O},                       // Philips NOM_DIM_CM_H2O 0x0F40
	{263762, "MDC_DIM_MILLI_L", UnitMilliLitre},                 // Philips NOM_DIM_MILLI_L 0x0652
	{268050, "MDC_DIM_MILLI_L_PER_CM_H2O", UnitMilliLitrePerCm}, // Philips NOM_DIM_MILLI_L_PER_CM_H2O 0x1712
	{264608, "MDC_DIM_PER_SEC", UnitHertz},
}

// UnitFromMDC maps an OBX-6 MDC unit (by code or by name) to its UCUM unit.
func UnitFromMDC(code Code, name string) (string, bool) {
	name = strings.ToUpper(strings.TrimSpace(name))
	for _, u := range mdcUnits {
		if (code != 0 && u.Code == code) || (name != "" && u.Name == name) {
			return u.UCUM, true
		}
	}
	// Alternative spellings seen in vendor messages.
	switch name {
	case "MDC_DIM_DEGF":
		return UnitFahrenheit, true
	case "MDC_DIM_BPM":
		return UnitPerMinute, true
	}
	return "", false
}

// MDCUnitFor returns the MDC unit to put in OBX-6 for a UCUM unit. Rates are written as
// beats per minute unless the quantity is a respiration rate.
func MDCUnitFor(ucum string, q Code) (MDCUnit, bool) {
	if ucum == UnitPerMinute {
		switch q {
		case MDC_RESP_RATE, MDC_TTHOR_RESP_RATE, MDC_AWAY_RESP_RATE, MDC_PULS_OXIM_PLETH_RESP_RATE:
			return mdcUnits[3], true
		}
		return mdcUnits[2], true
	}
	for _, u := range mdcUnits {
		if u.UCUM == ucum {
			return u, true
		}
	}
	return MDCUnit{}, false
}

// NormalizeUnit maps the unit spellings monitors put in OBX-6 or their own frames ("bpm",
// "mmHg", "degC", "%SpO2") to the UCUM unit of the model.
func NormalizeUnit(s string) (string, bool) {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "%", "percent", "%spo2", "pct":
		return UnitPercent, true
	case "/min", "1/min", "bpm", "{beats}/min", "{beat}/min", "{breaths}/min", "{breath}/min", "rpm", "brpm", "/m":
		return UnitPerMinute, true
	case "mm[hg]", "mmhg", "mm hg":
		return UnitMMHg, true
	case "kpa":
		return UnitKPa, true
	case "cel", "degc", "°c", "c", "deg c":
		return UnitCelsius, true
	case "[degf]", "degf", "°f", "f":
		return UnitFahrenheit, true
	case "mv":
		return UnitMilliVolt, true
	case "uv", "µv", "μv":
		return UnitMicroVolt, true
	case "ohm", "Ω":
		return UnitOhm, true
	case "1", "", "{dimensionless}":
		return UnitNone, true
	case "hz", "/s":
		return UnitHertz, true
	case "l/min", "lpm":
		return UnitLitrePerMinute, true
	case "cm[h2o]", "cmh2o":
		return UnitCmH2O, true
	case "ml":
		return UnitMilliLitre, true
	case "ml/cm[h2o]", "ml/cmh2o":
		return UnitMilliLitrePerCm, true
	}
	return "", false
}
