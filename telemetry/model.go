// Package telemetry is the box's one model of a patient's vitals, whatever monitor they
// come from: numerics, waveform blocks, alarms and device events, each named by its
// IEEE 11073-10101 MDC code with a UCUM unit, and carrying both the monitor's clock and the
// box's receive clock. Drivers for each monitor protocol live in sub-packages (hl7, nonin,
// datex, intellivue) and implement Driver; the reader in telemetry/monitor runs them on a
// port and publishes what they emit on a Bus.
package telemetry

import (
	"fmt"
	"time"
)

// Kind tells the event types apart.
type Kind uint8

// Event kinds.
const (
	KindNumeric Kind = iota + 1
	KindWave
	KindAlarm
	KindDevice
)

func (k Kind) String() string {
	switch k {
	case KindNumeric:
		return "numeric"
	case KindWave:
		return "wave"
	case KindAlarm:
		return "alarm"
	case KindDevice:
		return "device"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is one thing a monitor told us: a *Numeric, *Wave, *Alarm or *DeviceEvent.
// Drivers allocate a fresh event per emit; after Emit nobody mutates it, so the bus hands
// the same pointer to every subscriber.
type Event interface {
	Kind() Kind
	// Received is when the box read the bytes that completed this event.
	Received() time.Time
}

// Numeric is one measured value.
type Numeric struct {
	Code  Code
	Value float64
	Unit  string // UCUM
	// Channel says which channel of the monitor measured the value: the same code on two
	// channels (two temperatures, two respiration rates) is two values, never one.
	Channel Channel
	// Ref is the monitor's own reference id for Code (HL7 OBX-3.2, the IntelliVue label)
	// when mdc.go has no name for it; empty otherwise. NameOf turns it into the name.
	Ref string
	// MonitorTime is the monitor's own timestamp for the value; zero when the protocol
	// carries none (Nonin) or the monitor's clock was not set.
	MonitorTime time.Time
	// ReceiveTime is the box's clock when the value arrived.
	ReceiveTime time.Time
	// Measured is when an episodic measurement was taken (an NIBP cuff cycle ends long
	// before the monitor keeps re-reporting it); zero for continuous values.
	Measured time.Time
	// Invalid is set when the monitor flags the value as questionable or unavailable
	// (sensor off, artifact, out of range); the value is kept for the record.
	Invalid bool
}

// Kind implements Event.
func (*Numeric) Kind() Kind { return KindNumeric }

// Received implements Event.
func (n *Numeric) Received() time.Time { return n.ReceiveTime }

// Time returns the best clock for display: the monitor's when it has one, else the box's.
func (n *Numeric) Time() time.Time {
	if !n.MonitorTime.IsZero() {
		return n.MonitorTime
	}
	return n.ReceiveTime
}

// NIBP is one non-invasive blood pressure measurement. Monitors report it as three
// numerics sharing one measurement time; Numerics produces them.
type NIBP struct {
	Sys, Dia, Mean float64
	Unit           string // UCUM, normally mm[Hg]
	Measured       time.Time
	MonitorTime    time.Time
	ReceiveTime    time.Time
}

// Numerics splits the measurement into MDC_PRESS_BLD_NONINV_SYS/DIA/MEAN numerics.
func (p NIBP) Numerics() []*Numeric {
	unit := p.Unit
	if unit == "" {
		unit = UnitMMHg
	}
	mk := func(c Code, v float64) *Numeric {
		return &Numeric{Code: c, Value: v, Unit: unit, MonitorTime: p.MonitorTime, ReceiveTime: p.ReceiveTime, Measured: p.Measured}
	}
	return []*Numeric{mk(MDC_PRESS_BLD_NONINV_SYS, p.Sys), mk(MDC_PRESS_BLD_NONINV_DIA, p.Dia), mk(MDC_PRESS_BLD_NONINV_MEAN, p.Mean)}
}

// Wave is a block of consecutive samples of one signal.
type Wave struct {
	Code Code
	Unit string  // UCUM unit of Samples
	Rate float64 // samples per second
	// Channel is the monitor channel the signal comes from (see Numeric.Channel); a
	// viewer joins blocks per source, code and channel.
	Channel Channel
	// Ref is the monitor's reference id for a Code mdc.go does not name (see Numeric.Ref).
	Ref string
	// Start is the time of the first sample on the steady time axis the reader rebuilds
	// (Timeline): successive blocks of a channel abut exactly at 1/Rate spacing while the
	// signal is continuous, even though monitors deliver them in bursts.
	Start time.Time
	// MonitorStart is the monitor's timestamp of the first sample, zero if it has none.
	MonitorStart time.Time
	// ReceiveTime is the box's clock when the block's last sample arrived.
	ReceiveTime time.Time
	// Samples are in Unit. float32 keeps 24 bits of mantissa: enough for ECG in mV
	// at µV resolution, and half the memory of float64 at 12 leads × 500 Hz.
	Samples []float32
	// Invalid marks samples the monitor flagged (lead off, sensor off); kept for the record.
	Invalid bool
	// Gap is set on the first block after samples were lost (dropped frames, a pulled
	// cable), so consumers do not draw a line across the hole.
	Gap bool
}

// Kind implements Event.
func (*Wave) Kind() Kind { return KindWave }

// Received implements Event.
func (w *Wave) Received() time.Time { return w.ReceiveTime }

// Duration is the time the block spans.
func (w *Wave) Duration() time.Duration {
	if w.Rate <= 0 {
		return 0
	}
	return time.Duration(float64(len(w.Samples)) / w.Rate * float64(time.Second))
}

// End is the time just after the last sample on the steady axis.
func (w *Wave) End() time.Time { return w.Start.Add(w.Duration()) }

// Priority is an alarm's priority, as the monitor ranks it.
type Priority uint8

// Alarm priorities (IEC 60601-1-8 terms).
const (
	PriorityNone Priority = iota // a message / prompt without alarm signal
	PriorityLow
	PriorityMedium
	PriorityHigh
)

func (p Priority) String() string {
	switch p {
	case PriorityNone:
		return "none"
	case PriorityLow:
		return "low"
	case PriorityMedium:
		return "medium"
	case PriorityHigh:
		return "high"
	}
	return fmt.Sprintf("priority(%d)", uint8(p))
}

// Alarm is an alarm the monitor raised or cleared.
type Alarm struct {
	Priority Priority
	Text     string // as the monitor shows it, e.g. "HR HIGH", "VTACH"
	// Code is the MDC code of the quantity the alarm is about, if the monitor names one.
	Code Code
	// Channel is the monitor channel the alarm is about, when the monitor says.
	Channel     Channel
	On          bool // true when raised, false when cleared
	MonitorTime time.Time
	ReceiveTime time.Time
}

// Kind implements Event.
func (*Alarm) Kind() Kind { return KindAlarm }

// Received implements Event.
func (a *Alarm) Received() time.Time { return a.ReceiveTime }

// DeviceState names a device event.
type DeviceState uint8

// Device events.
const (
	DeviceConnected    DeviceState = iota + 1 // the port is open and the protocol answers
	DeviceDisconnected                        // the port failed or disappeared (cable pulled)
	DeviceSilent                              // the port is open but no valid frame for the silence limit
	DeviceLeadOff                             // an ECG electrode is off
	DeviceSensorOff                           // an SpO2 probe / other sensor is off the patient
	DeviceSensorOn                            // sensor or lead back on
	DeviceNoSignal                            // sensor on but no usable signal (out of track, artifact)
)

func (s DeviceState) String() string {
	switch s {
	case DeviceConnected:
		return "connected"
	case DeviceDisconnected:
		return "disconnected"
	case DeviceSilent:
		return "silent"
	case DeviceLeadOff:
		return "lead-off"
	case DeviceSensorOff:
		return "sensor-off"
	case DeviceSensorOn:
		return "sensor-on"
	case DeviceNoSignal:
		return "no-signal"
	}
	return fmt.Sprintf("device(%d)", uint8(s))
}

// DeviceEvent reports a change in the monitor or its connection.
type DeviceEvent struct {
	State DeviceState
	// Code names the quantity concerned (e.g. MDC_PULS_OXIM_SAT_O2 for a probe off), or 0.
	Code Code
	// Channel is the monitor channel concerned (the ECG module, the T2 probe), when known.
	Channel     Channel
	Detail      string // human-readable detail for the log and status page
	ReceiveTime time.Time
}

// Kind implements Event.
func (*DeviceEvent) Kind() Kind { return KindDevice }

// Received implements Event.
func (d *DeviceEvent) Received() time.Time { return d.ReceiveTime }
