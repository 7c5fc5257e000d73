package intellivue

import (
	"fmt"
	"math"
	"strings"
	"time"

	"lifeline/telemetry"
)

// Every numeric, wave and alarm goes on the bus with its channel: the object handle the
// monitor reports it under (the same physio id on two handles is two channels: two
// temperatures, two pressures) and the label string the monitor shows for it. A physio
// id the nomenclature table does not map goes out under its 11073 code (the IntelliVue
// term is the 11073-10101 term in partition 2) and, when mdc.go has no name for it,
// under the monitor's label.

func (c *conn) results(r PollReply, now time.Time) {
	mt := c.monitorTime(r.RelTime)
	for _, ctxPoll := range r.Contexts {
		for _, o := range ctxPoll.Objects {
			c.noteLabel(o)
			switch r.ObjClass {
			case ClassNumeric:
				c.numeric(o, mt, now)
			case ClassRTSA:
				c.wave(o, mt, now)
			case ClassAlertMon:
				c.alerts(o, mt, now)
			}
		}
	}
}

// noteLabel remembers an object's label string when the poll carries it.
func (c *conn) noteLabel(o ObservationPoll) {
	for _, a := range o.Attrs {
		if a.ID == AttrLabelString {
			if s, ok := ParseString(a.Value); ok && s != "" {
				c.labels[o.Handle] = s
			}
		}
	}
}

// channel returns the channel of an object handle.
func (c *conn) channel(handle uint16) telemetry.Channel {
	return telemetry.Channel{ID: fmt.Sprintf("0x%04X", handle), Label: c.labels[handle]}
}

// codeOf maps a physio id to the model's code: by the nomenclature table, else by the
// 11073 code it stands for, with the monitor's label as its name when mdc.go has none.
// Ids in Philips' private range (0xF000 and up) have no 11073 code: they are kept under
// partition 2 and named by the label, so they are never confused with a standard code.
func (c *conn) codeOf(id, handle uint16) (telemetry.Code, string) {
	if code, ok := Lookup(id); ok {
		return code, ""
	}
	code := telemetry.Code(uint32(PartSCADA)<<16 | uint32(id))
	if _, ok := telemetry.Lookup(code); ok {
		return code, ""
	}
	c.noteUnmapped(id)
	return code, c.labels[handle]
}

func (c *conn) numeric(o ObservationPoll, mt, now time.Time) {
	var obs []NuObs
	var measured time.Time
	for _, a := range o.Attrs {
		switch a.ID {
		case AttrNuValObs:
			n, err := ParseNuObs(a.Value)
			if err != nil {
				c.bad(len(a.Value), "bad numeric", err)
				continue
			}
			obs = append(obs, n)
		case AttrNuCmpdValObs:
			ns, err := ParseNuCmpd(a.Value)
			if err != nil {
				c.bad(len(a.Value), "bad compound numeric", err)
				continue
			}
			obs = append(obs, ns...)
		case AttrStampAbs:
			if len(a.Value) == 8 {
				measured, _ = AbsoluteTime(a.Value).Time(c.d.cfg.Location)
			}
		}
	}
	for _, n := range obs {
		v, ok := n.Value.Value()
		if !ok {
			continue // no value on the screen either
		}
		unit, ok := Unit(n.Unit)
		if !ok {
			// A unit the model cannot name would make a number nobody can read.
			c.noteUnit(n.PhysioID, n.Unit)
			continue
		}
		code, ref := c.codeOf(n.PhysioID, o.Handle)
		c.handles[n.PhysioID] = o.Handle
		ev := &telemetry.Numeric{Code: code, Ref: ref, Value: v, Unit: unit, Channel: c.channel(o.Handle), MonitorTime: mt, ReceiveTime: now,
			Invalid: n.State&stateNotTrustworth != 0}
		switch code {
		case telemetry.MDC_PRESS_BLD_NONINV_SYS, telemetry.MDC_PRESS_BLD_NONINV_DIA, telemetry.MDC_PRESS_BLD_NONINV_MEAN:
			ev.Measured = measured
		}
		c.out.Emit(ev)
	}
}

func (c *conn) noteUnmapped(id uint16) {
	if !c.unmapped[id] {
		c.unmapped[id] = true
		c.d.log.Info("intellivue: physio id not in mdc.go; published under the monitor's label", "physio_id", fmt.Sprintf("0x%04x", id))
	}
}

func (c *conn) noteUnit(id, unit uint16) {
	key := id ^ 0x8000 // kept apart from noteUnmapped's ids
	if !c.unmapped[key] {
		c.unmapped[key] = true
		c.d.log.Warn("intellivue: numeric with a unit the model does not know; not published", "physio_id", fmt.Sprintf("0x%04x", id), "unit", fmt.Sprintf("0x%04x", unit))
	}
}

func (c *conn) wave(o ObservationPoll, mt, now time.Time) {
	ws := c.waves[o.Handle]
	if ws == nil {
		ws = &waveSpec{}
		c.waves[o.Handle] = ws
	}
	var obs []SaObs
	for _, a := range o.Attrs {
		var err error
		switch a.ID {
		case AttrSaSpec:
			ws.spec, err = ParseSaSpec(a.Value)
			ws.ok[0] = err == nil
		case AttrScaleSpec:
			ws.scale, err = ParseScale(a.Value)
			ws.ok[1] = err == nil
		case AttrSamplePeriod:
			v, ok := parseU32(a.Value)
			ws.period, ws.ok[2] = RelativeTime(v), ok && v > 0
		case AttrUnitCode:
			if u, ok := parseU16(a.Value); ok {
				ws.unit, _ = Unit(u)
			}
		case AttrSaValObs:
			var s SaObs
			s, err = ParseSaObs(a.Value)
			if err == nil {
				obs = append(obs, s)
			}
		case AttrSaCmpdValObs:
			var ss []SaObs
			ss, err = ParseSaCmpd(a.Value)
			obs = append(obs, ss...)
		}
		if err != nil {
			c.bad(len(a.Value), "bad wave attribute", err)
		}
	}
	for _, s := range obs {
		if ev := c.waveBlock(o.Handle, ws, s, mt, now); ev != nil {
			c.out.Emit(ev)
		}
	}
}

// waveBlock turns one sample array into a wave event, or nil when it cannot be read yet.
func (c *conn) waveBlock(handle uint16, ws *waveSpec, s SaObs, mt, now time.Time) *telemetry.Wave {
	code, ref := c.codeOf(s.PhysioID, handle)
	if ws.ok != [3]bool{true, true, true} || ws.unit == "" {
		c.out.Skipped(len(s.Samples), "wave before its specification")
		c.lossGen++
		return nil
	}
	bytesPer := int(ws.spec.SampleSize) / 8
	if bytesPer < 1 {
		return nil
	}
	n := len(s.Samples) / bytesPer
	mask := uint16(0xFFFF)
	if ws.spec.SignificantBits > 0 && ws.spec.SignificantBits < 16 {
		mask = 1<<ws.spec.SignificantBits - 1
	}
	rate := 1 / ws.period.Duration().Seconds()
	if math.IsInf(rate, 0) {
		return nil
	}
	ev := &telemetry.Wave{Code: code, Ref: ref, Unit: ws.unit, Rate: rate, Channel: c.channel(handle), ReceiveTime: now, Samples: make([]float32, n)}
	for i := 0; i < n; i++ {
		var raw uint16
		if bytesPer == 2 {
			raw = uint16(s.Samples[2*i])<<8 | uint16(s.Samples[2*i+1])
		} else {
			raw = uint16(s.Samples[i])
		}
		ev.Samples[i] = float32(ws.scale.Physical(raw & mask))
	}
	if s.State&stateNotTrustworth != 0 {
		ev.Invalid = true
	}
	if !mt.IsZero() {
		// The result's time stamp dates the end of the block it carries.
		ev.MonitorStart = mt.Add(-time.Duration(float64(n) / rate * float64(time.Second)))
	}
	key := uint32(handle)<<16 | uint32(s.PhysioID)
	if gen, seen := c.chanGen[key]; seen && gen != c.lossGen {
		ev.Gap = true
	}
	c.chanGen[key] = c.lossGen
	return ev
}

func (c *conn) alerts(o ObservationPoll, mt, now time.Time) {
	current := map[DevAlarm]bool{}
	seen := false
	for _, a := range o.Attrs {
		if a.ID != AttrAlarmsP && a.ID != AttrAlarmsT {
			continue
		}
		seen = true
		list, err := ParseAlarmList(a.Value)
		if err != nil {
			c.bad(len(a.Value), "bad alarm list", err)
			return
		}
		for _, al := range list {
			if al.Type == AlarmTypeNone {
				continue
			}
			current[al] = true
		}
	}
	if !seen {
		return
	}
	for k := range current {
		if !c.alarms[k] {
			c.alarmEvents(k, true, mt, now)
		}
	}
	for k := range c.alarms {
		if !current[k] {
			c.alarmEvents(k, false, mt, now)
		}
	}
	c.alarms = current
}

// alarmEvents emits an alarm raised or cleared with the channel it is about (the
// object the monitor names, else the object its physio id was last reported on), and
// for a technical alarm about a lead or sensor off the patient the device event.
func (c *conn) alarmEvents(a DevAlarm, on bool, mt, now time.Time) {
	code, _ := Lookup(a.Source)
	handle := a.Object.Handle
	if handle == 0 {
		handle = c.handles[a.Source]
	}
	var ch telemetry.Channel
	if handle != 0 {
		ch = c.channel(handle)
	}
	c.out.Emit(&telemetry.Alarm{Priority: alarmPriority(a.Type), Text: a.Text, Code: code, Channel: ch, On: on, MonitorTime: mt, ReceiveTime: now})
	if st := sensorState(a); st != 0 {
		ev := &telemetry.DeviceEvent{State: st, Code: code, Channel: ch, Detail: a.Text, ReceiveTime: now}
		if !on {
			ev.State = telemetry.DeviceSensorOn
		}
		c.out.Emit(ev)
	}
}

// sensorState reads a technical alarm (INOP) as lead-off or sensor-off; IntelliVue
// INOP texts say "LEADS OFF", "<lead> LEAD OFF", "SpO2 SENSOR OFF", "SpO2 NO SENSOR".
func sensorState(a DevAlarm) telemetry.DeviceState {
	switch a.Type {
	case AlarmLowT, AlarmMedT, AlarmHighT:
	default:
		return 0
	}
	up := strings.ToUpper(a.Text)
	switch {
	case strings.Contains(up, "LEAD") && strings.Contains(up, "OFF"):
		return telemetry.DeviceLeadOff
	case strings.Contains(up, "SENSOR OFF") || strings.Contains(up, "NO SENSOR") || strings.Contains(up, "PROBE OFF") || strings.Contains(up, "TRANSDUCER OFF"):
		return telemetry.DeviceSensorOff
	}
	return 0
}

func alarmPriority(t uint16) telemetry.Priority {
	switch t {
	case AlarmHighP, AlarmHighT:
		return telemetry.PriorityHigh
	case AlarmMedP, AlarmMedT:
		return telemetry.PriorityMedium
	case AlarmLowP, AlarmLowT:
		return telemetry.PriorityLow
	}
	return telemetry.PriorityNone
}
