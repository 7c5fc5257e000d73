package telemetry

import (
	"strings"
	"testing"
)

func TestQuantityTableIsConsistent(t *testing.T) {
	seen := map[Code]string{}
	for _, q := range Quantities() {
		if prev, dup := seen[q.Code]; dup {
			t.Errorf("code %d used by %s and %s", q.Code, prev, q.Name)
		}
		seen[q.Code] = q.Name
		if q.Code.Partition() != 2 {
			t.Errorf("%s: partition %d, want 2 (SCADA)", q.Name, q.Code.Partition())
		}
		if got, ok := LookupName(q.Name); !ok || got.Code != q.Code {
			t.Errorf("LookupName(%s) = %v, %v", q.Name, got, ok)
		}
		if q.Code.Name() != q.Name {
			t.Errorf("Code(%d).Name() = %s, want %s", q.Code, q.Code.Name(), q.Name)
		}
		if _, ok := MDCUnitFor(q.Unit, q.Code); !ok {
			t.Errorf("%s: no MDC unit for UCUM %q", q.Name, q.Unit)
		}
	}
	for name, c := range aliases {
		if _, ok := byCode[c]; !ok {
			t.Errorf("alias %s points to unknown code %d", name, c)
		}
	}
}

func TestWellKnownCodes(t *testing.T) {
	// Numbers as they appear in OBX-3 of published PCD-01 messages.
	for name, want := range map[string]Code{
		"MDC_ECG_HEART_RATE":        147842,
		"MDC_PULS_OXIM_SAT_O2":      150456,
		"MDC_PULS_OXIM_PULS_RATE":   149530,
		"MDC_PRESS_BLD_NONINV_SYS":  150021,
		"MDC_PRESS_BLD_NONINV_MEAN": 150023,
		"MDC_TTHOR_RESP_RATE":       151578,
		"MDC_ECG_ELEC_POTL_II":      131330,
		"MDC_PULS_OXIM_PLETH":       150452,
		"MDC_BLD_PERF_INDEX":        150488,
	} {
		q, ok := LookupName(name)
		if !ok || q.Code != want {
			t.Errorf("%s = %d (%v), want %d", name, q.Code, ok, want)
		}
	}
	if u, ok := UnitFromMDC(264864, ""); !ok || u != UnitPerMinute {
		t.Errorf("UnitFromMDC(264864) = %q, %v", u, ok)
	}
	if u, ok := UnitFromMDC(0, "MDC_DIM_MMHG"); !ok || u != UnitMMHg {
		t.Errorf("UnitFromMDC(MDC_DIM_MMHG) = %q, %v", u, ok)
	}
	if Code(999999).Name() != "MDC_CODE_999999" {
		t.Errorf("unknown code name = %s", Code(999999).Name())
	}
}

// TestAddedCodesAgreeWithTheirSources pins the codes added for issue 15 to the numbers
// their sources give: those seen in GE PCD-01 messages, those cross-checked between the
// Philips nomenclature and other tables, and the rule that an IntelliVue SCADA term is
// the 11073 term (so a code is 131072 + the Philips NOM id).
func TestAddedCodesAgreeWithTheirSources(t *testing.T) {
	for name, want := range map[string]Code{
		"MDC_CONC_AWAY_CO2_EXP":  151712, // GE B40/B1x5 OBX-3
		"MDC_CONC_AWAY_CO2_INSP": 151716, // GE B40/B1x5 OBX-3
		"MDC_CONC_AWAY_O2_INSP":  152196, // Philips 0x5284 and Rosetta tables
		"MDC_ECG_AMPL_ST_I":      131841, // Philips 0x0301 and GE's code list
		"MDC_TEMP_ESOPH":         131072 + 0x4B64,
		"MDC_TEMP_SKIN":          131072 + 0x4B74, // already in mdc.go before: the rule holds
		"MDC_PULS_OXIM_SAT_O2":   131072 + 0x4BB8,
		"MDC_SAT_O2_VEN":         131072 + 0x4B3C,
		"MDC_CONC_AWAY_O2_ET":    131072 + 0x5378,
	} {
		if q, ok := LookupName(name); !ok || q.Code != want {
			t.Errorf("%s = %d (%v), want %d", name, q.Code, ok, want)
		}
	}
	for _, lead := range ECG12 {
		st := STFor(lead)
		if q, ok := Lookup(st); !ok || !strings.HasPrefix(q.Name, "MDC_ECG_AMPL_ST_") {
			t.Errorf("STFor(%s) = %d, not an ST code of the table", lead, st)
		}
	}
	if u, ok := UnitFromMDC(265216, ""); !ok || u != UnitLitrePerMinute {
		t.Errorf("MDC_DIM_X_L_PER_MIN = %q, %v", u, ok)
	}
}
