package hl7

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"lifeline/telemetry"
)

// localCodes maps the OBX-3 text labels of monitors that send their own code tables
// (e.g. Mindray's legacy "101^HR^99MNDRY", Comen/Edan "HR^Heart Rate^L") instead of MDC codes.
var localCodes = map[string]telemetry.Code{
	"HR":       telemetry.MDC_ECG_HEART_RATE,
	"SPO2":     telemetry.MDC_PULS_OXIM_SAT_O2,
	"PR":       telemetry.MDC_PULS_OXIM_PULS_RATE,
	"RR":       telemetry.MDC_RESP_RATE,
	"RESP":     telemetry.MDC_RESP_RATE,
	"T1":       telemetry.MDC_TEMP,
	"TEMP":     telemetry.MDC_TEMP,
	"ETCO2":    telemetry.MDC_AWAY_CO2_ET,
	"CO2ET":    telemetry.MDC_AWAY_CO2_ET,
	"FICO2":    telemetry.MDC_AWAY_CO2_INSP_MIN,
	"NIBP_SYS": telemetry.MDC_PRESS_BLD_NONINV_SYS,
	"NIBP_DIA": telemetry.MDC_PRESS_BLD_NONINV_DIA,
	"NIBP_MAP": telemetry.MDC_PRESS_BLD_NONINV_MEAN,
	"NIBPS":    telemetry.MDC_PRESS_BLD_NONINV_SYS,
	"NIBPD":    telemetry.MDC_PRESS_BLD_NONINV_DIA,
	"NIBPM":    telemetry.MDC_PRESS_BLD_NONINV_MEAN,
	"PI":       telemetry.MDC_PULS_OXIM_PERF_REL,
	"NBPS":     telemetry.MDC_PRESS_BLD_NONINV_SYS, // Philips Efficia MDIL labels
	"NBPD":     telemetry.MDC_PRESS_BLD_NONINV_DIA,
	"NBPM":     telemetry.MDC_PRESS_BLD_NONINV_MEAN,
	"PULSE":    telemetry.MDC_PULS_OXIM_PULS_RATE,
}

// Identify maps an OBX-3 coded element to an MDC code: by the numeric code when the
// coding system is MDC (or the name is an MDC reference id), by the reference id when
// the number is 0 or unknown, and by a vendor's local label as a last resort.
func Identify(obx3 []string) (telemetry.Code, bool) {
	get := func(i int) string {
		if i < len(obx3) {
			return strings.TrimSpace(obx3[i])
		}
		return ""
	}
	id, text, system := get(0), get(1), strings.ToUpper(get(2))
	isMDC := system == "MDC" || strings.HasPrefix(strings.ToUpper(text), "MDC_")
	// The number is what PCD-01 makes normative; the reference id beside it is
	// informative and vendors' labels differ (where a vendor labels a number differently from our table, the number wins).
	var num uint64
	if isMDC {
		num, _ = strconv.ParseUint(id, 10, 32)
		if num != 0 {
			if _, ok := telemetry.Lookup(telemetry.Code(num)); ok {
				return telemetry.Code(num), true
			}
		}
	}
	if strings.HasPrefix(strings.ToUpper(text), "MDC_") {
		if q, ok := telemetry.LookupName(text); ok {
			return q.Code, true
		}
	}
	if num != 0 {
		return telemetry.Code(num), false // an MDC code outside our table: kept, flagged
	}
	if strings.HasPrefix(strings.ToUpper(id), "MDC_") {
		if q, ok := telemetry.LookupName(id); ok {
			return q.Code, true
		}
	}
	for _, label := range []string{text, id} {
		if c, ok := localCodes[strings.ToUpper(strings.ReplaceAll(label, " ", "_"))]; ok {
			return c, true
		}
	}
	// Philips MDIL codes are the 11073 partition and term in hex ("0002-4bb0" is
	// partition 2, term 0x4BB0): a label we do not know still has its code, and Decode
	// names it by the label the message gives (OBX-3.2).
	if system == "MDIL" {
		if c, ok := mdilCode(id); ok {
			_, known := telemetry.Lookup(c)
			return c, known
		}
	}
	return 0, false
}

// mdilCode parses an MDIL identifier "PPPP-TTTT" (hex partition and term).
func mdilCode(id string) (telemetry.Code, bool) {
	part, term, ok := strings.Cut(id, "-")
	if !ok || len(part) != 4 || len(term) != 4 {
		return 0, false
	}
	p, err1 := strconv.ParseUint(part, 16, 16)
	t, err2 := strconv.ParseUint(term, 16, 16)
	if err1 != nil || err2 != nil || p == 0 {
		return 0, false
	}
	return telemetry.Code(p<<16 | t), true
}

// ParseTS parses an HL7 DTM/TS value (YYYY[MM[DD[HH[MM[SS[.S…]]]]]][±ZZZZ]); without a
// zone it is taken in loc.
func ParseTS(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '^'); i >= 0 {
		s = s[:i]
	}
	zone := ""
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		s, zone = s[:i], s[i:]
	}
	frac := ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s, frac = s[:i], s[i+1:]
	}
	layouts := map[int]string{4: "2006", 6: "200601", 8: "20060102", 10: "2006010215", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(s)]
	if !ok {
		return time.Time{}, fmt.Errorf("hl7: bad timestamp %q", s)
	}
	if zone != "" {
		if len(zone) != 5 {
			return time.Time{}, fmt.Errorf("hl7: bad time zone %q", zone)
		}
		layout += "-0700"
		s += zone
		loc = time.UTC
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("hl7: bad timestamp %q: %w", s, err)
	}
	if frac != "" {
		f, err := strconv.ParseFloat("0."+frac, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("hl7: bad fraction %q", frac)
		}
		t = t.Add(time.Duration(f * float64(time.Second)).Round(time.Microsecond))
	}
	return t, nil
}

// unitOf reads OBX-6: an MDC unit (code^MDC_DIM_…^MDC) or UCUM / free text.
func unitOf(obx6 []string) (string, bool) {
	if len(obx6) == 0 || (len(obx6) == 1 && obx6[0] == "") {
		return "", false
	}
	name := ""
	if len(obx6) > 1 {
		name = obx6[1]
	}
	if n, err := strconv.ParseUint(obx6[0], 10, 32); err == nil || strings.HasPrefix(strings.ToUpper(name), "MDC_DIM") || strings.HasPrefix(strings.ToUpper(obx6[0]), "MDC_DIM") {
		if strings.HasPrefix(strings.ToUpper(obx6[0]), "MDC_DIM") {
			name = obx6[0]
		}
		if u, ok := telemetry.UnitFromMDC(telemetry.Code(n), name); ok {
			return u, true
		}
	}
	for _, s := range obx6 {
		if u, ok := telemetry.NormalizeUnit(s); ok && s != "" {
			return u, true
		}
	}
	return strings.TrimSpace(obx6[0]), false
}

// Result is what one message contributed.
type Result struct {
	Events []telemetry.Event
	// Ignored counts OBX segments that could not be mapped (unknown code, bad value),
	// with the first problem for the log.
	Ignored   int
	FirstProb string
}

func (r *Result) ignore(format string, args ...any) {
	if r.Ignored == 0 {
		r.FirstProb = fmt.Sprintf(format, args...)
	}
	r.Ignored++
}

// Decode maps an ORU^R01 (observations, PCD-01) or ORU^R40 (alarms, PCD-04 style)
// message to events. now is the box's receive time; loc the zone for timestamps without
// one. Unknown OBX are counted in Result.Ignored, never fatal.
func Decode(m *Message, now time.Time, loc *time.Location) Result {
	var r Result
	if loc == nil {
		loc = time.Local
	}
	if m.MSH().Get(9, 0) != "ORU" {
		r.ignore("message type %s is not an observation report", m.Type())
		return r
	}
	alarms := m.MSH().Get(9, 1) == "R40"
	var obrTime time.Time
	var obx []Segment
	for _, s := range m.Segments {
		switch s.Name() {
		case "OBR":
			obrTime, _ = ParseTS(s.Value(7), loc)
		case "OBX":
			obx = append(obx, s)
		}
	}
	// Sampling rates come in their own OBX whose sub-id extends the wave's (1.7.6.131330
	// then 1.7.6.131330.1), or simply follow it: index them by parent sub-id.
	rates := map[string]float64{}
	for i, s := range obx {
		if !strings.Contains(strings.ToUpper(s.Get(3, 1)), "MDC_ATTR_SAMP_RATE") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(s.Value(5)), 64)
		if err != nil || v <= 0 {
			continue
		}
		sub := s.Value(4)
		if k := strings.LastIndexByte(sub, '.'); k > 0 {
			rates[sub[:k]] = v
		}
		if i > 0 {
			rates["#"+strconv.Itoa(i-1)] = v
		}
	}
	if alarms {
		decodeAlarms(obx, now, loc, obrTime, &r)
		return r
	}
	devices := newContainment()
	var nums []*telemetry.Numeric
	vmds := map[*telemetry.Numeric]string{}
	for i, s := range obx {
		typ := strings.ToUpper(s.Value(2))
		name := strings.ToUpper(s.Get(3, 1))
		if strings.HasPrefix(name, "MDC_DEV_") {
			devices.note(s.Value(4), name)
			continue // a device row: it names the VMD or channel of the rows below
		}
		if typ == "" || strings.HasPrefix(name, "MDC_ATTR_") {
			continue // attributes carry no observation
		}
		code, known := Identify(s.Field(3).Components())
		if code == 0 {
			r.ignore("OBX-3 %q: unknown observation", strings.Join(s.Field(3).Components(), "^"))
			continue
		}
		// A code mdc.go does not name keeps the name the message gives it (OBX-3.2),
		// so that MDC_CONC_AWAY_CO2_EXP never shows as MDC_CODE_151712.
		ref := ""
		if _, inTable := telemetry.Lookup(code); !inTable {
			ref = strings.TrimSpace(s.Get(3, 1))
		}
		channel := devices.channelOf(s.Value(4), s.Get(17, 1))
		unit, unitOK := unitOf(s.Field(6).Components())
		q, _ := telemetry.Lookup(code)
		if !unitOK && unit == "" && known {
			unit = q.Unit // no unit sent: the quantity's own
		}
		scale := 1.0
		if unit == telemetry.UnitMicroVolt && q.Unit == telemetry.UnitMilliVolt {
			unit, scale = telemetry.UnitMilliVolt, 0.001
		}
		obsTime, _ := ParseTS(s.Value(14), loc)
		status := strings.ToUpper(s.Value(11))
		switch typ {
		case "NM":
			v, err := strconv.ParseFloat(strings.TrimSpace(s.Value(5)), 64)
			if err != nil {
				r.ignore("OBX %s: value %q is not a number", code.Name(), s.Value(5))
				continue
			}
			n := &telemetry.Numeric{Code: code, Value: v * scale, Unit: unit, Channel: channel, Ref: ref, ReceiveTime: now, Invalid: status == "X" || status == "D"}
			if scale != 1 {
				n.Value = telemetry.Decimal(n.Value, decimalsOf(s.Value(5))+3)
			}
			n.MonitorTime = obsTime
			if n.MonitorTime.IsZero() {
				n.MonitorTime = obrTime
			}
			switch code {
			case telemetry.MDC_PRESS_BLD_NONINV_SYS, telemetry.MDC_PRESS_BLD_NONINV_DIA, telemetry.MDC_PRESS_BLD_NONINV_MEAN:
				n.Measured = obsTime // OBX-14 of an NIBP value is when the cuff measured it
			}
			vmds[n], _ = devices.device(channel.ID)
			nums = append(nums, n)
			r.Events = append(r.Events, n)
		case "NA", "MA":
			rate := rates[s.Value(4)]
			if rate == 0 {
				rate = rates["#"+strconv.Itoa(i)]
			}
			if rate == 0 {
				r.ignore("OBX %s: waveform without MDC_ATTR_SAMP_RATE", code.Name())
				continue
			}
			w := &telemetry.Wave{Code: code, Unit: unit, Rate: rate, Channel: channel, Ref: ref, ReceiveTime: now, Invalid: status == "X"}
			w.MonitorStart = obsTime
			if w.MonitorStart.IsZero() {
				w.MonitorStart = obrTime
			}
			// NA is one repetition of ^-separated values; MA repeats with ~ per sample set,
			// of which we take the first channel.
			f := s.Field(5)
			bad := false
			for _, rep := range f.Reps {
				comps := rep
				if typ == "MA" {
					comps = rep[:1]
				}
				for _, c := range comps {
					v, err := strconv.ParseFloat(strings.TrimSpace(c), 32)
					if err != nil {
						bad = true
						break
					}
					w.Samples = append(w.Samples, float32(v*scale))
				}
				if typ == "NA" {
					break
				}
			}
			if bad || len(w.Samples) == 0 {
				r.ignore("OBX %s: bad waveform data", code.Name())
				continue
			}
			r.Events = append(r.Events, w)
		default:
			// ST/CWE rows (e.g. lead names, modes) carry no vital.
		}
	}
	markPrimary(nums, func(n *telemetry.Numeric) string { return vmds[n] })
	return r
}

// decimalsOf counts the decimals of a numeric text value ("28.40" → 2).
func decimalsOf(v string) int {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '.'); i >= 0 {
		n := 0
		for _, c := range v[i+1:] {
			if c < '0' || c > '9' {
				break
			}
			n++
		}
		return n
	}
	return 0
}

// Alarm phases and priorities as written in ORU^R40 by Encoder and read by Decode.
const attrEventPhase = "MDC_ATTR_EVENT_PHASE"

func decodeAlarms(obx []Segment, now time.Time, loc *time.Location, obrTime time.Time, r *Result) {
	devices := newContainment()
	for i := 0; i < len(obx); i++ {
		s := obx[i]
		if strings.Contains(strings.ToUpper(s.Get(3, 1)), attrEventPhase) {
			continue
		}
		if name := strings.ToUpper(s.Get(3, 1)); strings.HasPrefix(name, "MDC_DEV_") {
			devices.note(s.Value(4), name)
			continue
		}
		a := &telemetry.Alarm{Text: s.Value(5), ReceiveTime: now, On: true, Channel: devices.channelOf(s.Value(4), s.Get(17, 1))}
		if c, ok := Identify(s.Field(3).Components()); ok {
			a.Code = c
		}
		switch strings.ToUpper(s.Value(8)) {
		case "PH", "H", "HH":
			a.Priority = telemetry.PriorityHigh
		case "PM", "M":
			a.Priority = telemetry.PriorityMedium
		case "PL", "L", "LL":
			a.Priority = telemetry.PriorityLow
		}
		a.MonitorTime, _ = ParseTS(s.Value(14), loc)
		if a.MonitorTime.IsZero() {
			a.MonitorTime = obrTime
		}
		if i+1 < len(obx) && strings.Contains(strings.ToUpper(obx[i+1].Get(3, 1)), attrEventPhase) {
			switch strings.ToLower(obx[i+1].Value(5)) {
			case "end", "inactive", "off", "stop":
				a.On = false
			}
			i++
		}
		if a.Text == "" {
			r.ignore("ORU^R40: alarm without text")
			continue
		}
		r.Events = append(r.Events, a)
		up := strings.ToUpper(a.Text)
		var st telemetry.DeviceState
		switch {
		case strings.Contains(up, "LEAD") && strings.Contains(up, "OFF"):
			st = telemetry.DeviceLeadOff
		case strings.Contains(up, "SENSOR OFF") || strings.Contains(up, "PROBE OFF"):
			st = telemetry.DeviceSensorOff
		}
		if st != 0 {
			if !a.On {
				st = telemetry.DeviceSensorOn
			}
			r.Events = append(r.Events, &telemetry.DeviceEvent{State: st, Code: a.Code, Channel: a.Channel, Detail: a.Text, ReceiveTime: now})
		}
	}
}
