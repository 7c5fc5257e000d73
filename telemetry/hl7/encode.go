package hl7

import (
	"strconv"
	"strings"
	"time"

	"lifeline/telemetry"
)

// TimeLayout is how timestamps are written: millisecond precision with the zone.
const TimeLayout = "20060102150405.000-0700"

// Header is what the writer puts in MSH.
type Header struct {
	SendingApp string    // MSH-3, e.g. "LIFELINE^0001^EUI-64"
	Facility   string    // MSH-4
	ControlID  string    // MSH-10
	Time       time.Time // MSH-7
	// AckType is MSH-15: "AL" asks the receiver for an ACK for every message, "NE" for none.
	AckType string
	// Charset is MSH-18; empty writes "UNICODE UTF-8".
	Charset string
}

func escape(s string) string {
	if !strings.ContainsAny(s, "|^~\\&\r\n") {
		return s
	}
	r := strings.NewReplacer("\\", "\\E\\", "|", "\\F\\", "^", "\\S\\", "&", "\\T\\", "~", "\\R\\", "\r", " ", "\n", " ")
	return r.Replace(s)
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(TimeLayout)
}

func msh(b *strings.Builder, h Header, typ string) {
	charset := h.Charset
	if charset == "" {
		charset = "UNICODE UTF-8"
	}
	app := h.SendingApp
	if app == "" {
		app = "LIFELINE"
	}
	b.WriteString("MSH|^~\\&|" + app + "|" + escape(h.Facility) + "|||" + ts(h.Time) + "||" + typ + "|" + escape(h.ControlID) + "|P|2.6|||" + h.AckType + "|NE||" + charset + "|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r")
}

// obsID writes OBX-3: the code, its name (the monitor's own for a code mdc.go does not
// name, so that it survives the round trip) and the coding system.
func obsID(c telemetry.Code, ref string) string {
	return strconv.FormatUint(uint64(c), 10) + "^" + escape(telemetry.NameOf(c, ref)) + "^MDC"
}

// channelFields writes OBX-4 and OBX-17 for a channel: the channel ID as the sub-id
// (an HL7 monitor's containment path comes back as it was read), and the label the
// monitor showed as the text of the observation method, where Decode reads it back.
// Without a channel the sub-id is the MDS-level path 1.0.0.n (n numbering the row),
// which PCD-01 receivers expect and Decode reads as "no channel".
func channelFields(ch telemetry.Channel, n int) (sub, method string) {
	if ch.Label != "" {
		method = "^" + escape(ch.Label)
	}
	if ch.ID == "" {
		return "1.0.0." + strconv.Itoa(n), method
	}
	return escape(ch.ID), method
}

func unitField(ucum string, c telemetry.Code) string {
	if u, ok := telemetry.MDCUnitFor(ucum, c); ok {
		return strconv.FormatUint(uint64(u.Code), 10) + "^" + u.Name + "^MDC"
	}
	return escape(ucum) + "^" + escape(ucum) + "^UCUM"
}

// EncodeORU writes an ORU^R01 message in the PCD-01 layout with the numerics as NM
// observations and each wave block as an NA observation followed by its
// MDC_ATTR_SAMP_RATE. Values are written in the shortest form that parses back to the
// same float (float32 for samples), so a round trip is exact.
func EncodeORU(h Header, nums []*telemetry.Numeric, waves []*telemetry.Wave) []byte {
	var b strings.Builder
	msh(&b, h, "ORU^R01^ORU_R01")
	b.WriteString("PID|||^^^Lifeline^PI||^^^^^^L\r")
	b.WriteString("OBR|1|" + escape(h.ControlID) + "^LIFELINE|" + escape(h.ControlID) + "^LIFELINE|182777000^monitoring of patient^SCT|||" + ts(h.Time) + "\r")
	n := 0
	obx := func(typ, id, sub, value, unit, status, when, method string) {
		n++
		b.WriteString("OBX|" + strconv.Itoa(n) + "|" + typ + "|" + id + "|" + sub + "|" + value + "|" + unit + "|||||" + status + "|||" + when)
		if method != "" {
			b.WriteString("|||" + method)
		}
		b.WriteString("\r")
	}
	for _, v := range nums {
		status := "R"
		if v.Invalid {
			status = "X"
		}
		when := v.MonitorTime
		if !v.Measured.IsZero() {
			when = v.Measured
		}
		if when.IsZero() {
			when = v.ReceiveTime
		}
		sub, method := channelFields(v.Channel, n+1)
		obx("NM", obsID(v.Code, v.Ref), sub, strconv.FormatFloat(v.Value, 'g', -1, 64), unitField(v.Unit, v.Code), status, ts(when), method)
	}
	for _, w := range waves {
		sub, method := channelFields(w.Channel, n+1)
		var vals strings.Builder
		for k, s := range w.Samples {
			if k > 0 {
				vals.WriteByte('^')
			}
			vals.WriteString(strconv.FormatFloat(float64(s), 'g', -1, 32))
		}
		status := "R"
		if w.Invalid {
			status = "X"
		}
		start := w.Start
		if start.IsZero() {
			start = w.MonitorStart
		}
		obx("NA", obsID(w.Code, w.Ref), sub, vals.String(), unitField(w.Unit, w.Code), status, ts(start), method)
		// The rate row follows its wave; Decode pairs them by sub-id.
		obx("NM", "0^MDC_ATTR_SAMP_RATE^MDC", sub+".1", strconv.FormatFloat(w.Rate, 'g', -1, 64), "264608^MDC_DIM_PER_SEC^MDC", "R", "", "")
	}
	return []byte(b.String())
}

// EncodeAlarms writes an ORU^R40 message: per alarm an ST observation with the text (the
// quantity's MDC code when known), the priority in OBX-8 (PH, PM, PL) and an
// MDC_ATTR_EVENT_PHASE observation saying "start" or "end".
func EncodeAlarms(h Header, alarms []*telemetry.Alarm) []byte {
	var b strings.Builder
	msh(&b, h, "ORU^R40^ORU_R40")
	b.WriteString("PID|||^^^Lifeline^PI||^^^^^^L\r")
	b.WriteString("OBR|1|" + escape(h.ControlID) + "^LIFELINE|" + escape(h.ControlID) + "^LIFELINE|196616^MDC_EVT_ALARM^MDC|||" + ts(h.Time) + "\r")
	n := 0
	for i, a := range alarms {
		id := "196616^MDC_EVT_ALARM^MDC"
		if a.Code != 0 {
			id = obsID(a.Code, "")
		}
		prio := map[telemetry.Priority]string{telemetry.PriorityHigh: "PH", telemetry.PriorityMedium: "PM", telemetry.PriorityLow: "PL", telemetry.PriorityNone: "PN"}[a.Priority]
		phase := "start"
		if !a.On {
			phase = "end"
		}
		when := a.MonitorTime
		if when.IsZero() {
			when = a.ReceiveTime
		}
		sub, method := channelFields(a.Channel, i+1)
		n++
		b.WriteString("OBX|" + strconv.Itoa(n) + "|ST|" + id + "|" + sub + "|" + escape(a.Text) + "|||" + prio + "|||F|||" + ts(when))
		if method != "" {
			b.WriteString("|||" + method)
		}
		b.WriteString("\r")
		n++
		b.WriteString("OBX|" + strconv.Itoa(n) + "|ST|68481^" + attrEventPhase + "^MDC|" + sub + ".1|" + phase + "||||||F\r")
	}
	return []byte(b.String())
}

// WantsAck reports whether the sender of m expects an ACK for an accepted message:
// always in original mode (MSH-15 and MSH-16 empty), and in enhanced mode when either the
// accept (MSH-15) or the application acknowledgement type (MSH-16) is AL or SU. GE's
// monitors send NE|AL and want the application ACK.
func WantsAck(m *Message) bool {
	acc, app := strings.ToUpper(m.MSH().Value(15)), strings.ToUpper(m.MSH().Value(16))
	if acc == "" && app == "" {
		return true
	}
	return acc == "AL" || acc == "SU" || app == "AL" || app == "SU"
}

// EncodeACK writes the acknowledgement of m: code AA (accepted), AE (error) or AR
// (rejected), with text for the error case.
func EncodeACK(m *Message, code, text string, now time.Time, controlID string) []byte {
	h := m.MSH()
	var b strings.Builder
	// Sender and receiver swap places.
	b.WriteString("MSH|^~\\&|LIFELINE|BOX|" + fieldString(h.Field(3)) + "|" + fieldString(h.Field(4)) + "|" + ts(now) + "||ACK^" + escape(h.Get(9, 1)) + "^ACK|" + escape(controlID) + "|P|" + escape(orDefault(h.Value(12), "2.6")) + "\r")
	b.WriteString("MSA|" + code + "|" + escape(m.ControlID()))
	if text != "" {
		b.WriteString("|" + escape(text))
	}
	b.WriteString("\r")
	return []byte(b.String())
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// fieldString writes a parsed field back with the standard encoding characters.
func fieldString(f Field) string {
	reps := make([]string, len(f.Reps))
	for i, r := range f.Reps {
		comps := make([]string, len(r))
		for j, c := range r {
			comps[j] = escape(c)
		}
		reps[i] = strings.Join(comps, "^")
	}
	return strings.Join(reps, "~")
}
