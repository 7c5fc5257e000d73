package vitals

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"lifeline/telemetry"
)

// Version is the format version every message carries in "v". A receiver refuses any
// other version; fields may be added within a version and receivers ignore fields they
// do not know.
const Version = 1

// The data channel labels the publisher opens and the hub's SFU forwards.
const (
	LabelReliable = "vitals"      // reliable, ordered: numerics, alarms, device events, receipts; acks back
	LabelWave     = "vitals-wave" // unordered, no retransmits: waveform chunks
	LabelControl  = "control"     // reliable, ordered, hub to crew: text guidance and requests
)

// Message types.
const (
	TypeNumeric = "numeric" // box → hub on LabelReliable
	TypeAlarm   = "alarm"   // box → hub on LabelReliable
	TypeDevice  = "device"  // box → hub on LabelReliable
	TypeReceipt = "receipt" // box → hub on LabelReliable: a control message arrived or was read
	TypeWave    = "wave"    // box → hub on LabelWave
	TypeAck     = "ack"     // hub → box on LabelReliable: cumulative acknowledgement
	TypeText    = "text"    // hub → box on LabelControl: guidance text for the crew
)

// Bounds a decoder enforces; a message beyond any of them is refused as a whole.
const (
	// MaxMessageBytes is the largest message accepted. Encoders stay well below it: a
	// wave chunk of MaxWaveSamples is under 8 KiB even with the longest sample spelling.
	MaxMessageBytes = 16 << 10
	// MaxWaveSamples is the most samples in one wave message; longer blocks are split.
	MaxWaveSamples = 500
	// MaxWaveRate is the highest sample rate accepted, samples per second.
	MaxWaveRate = 10000
	// MaxSeq is the largest sequence number: JavaScript reads numbers exactly only up
	// to 2^53−1, and the ED screen is JavaScript.
	MaxSeq    = 1<<53 - 1
	maxShort  = 64   // mdc, epoch, id, from, channel
	maxSource = 128  // monitor name or port path
	maxDevice = 128  // device ID: enrolled IDs are short, an unenrolled box names itself by host
	maxUnit   = 32   // UCUM unit, label, channel label
	maxDetail = 512  // device event detail, alarm text
	maxText   = 4096 // control text
)

// Message is one vitals message, exactly as it appears in JSON. Which fields are set
// depends on Type; stream/VITALS.md lists them per type.
type Message struct {
	V    int    `json:"v"`
	Type string `json:"type"`
	// Seq numbers the messages of one channel and direction: reliable box messages,
	// wave messages and control messages each count on their own from 1. For an ack it
	// is the highest reliable seq the hub holds durably.
	Seq uint64 `json:"seq"`
	// Epoch names the box's sequence space: it changes only when the box's store is
	// created anew, so a hub never mistakes a restarted count for duplicates.
	Epoch  string `json:"epoch,omitempty"`
	Device string `json:"device,omitempty"` // the box's device ID
	Source string `json:"source,omitempty"` // the monitor on the box, e.g. "monitor0"

	// The quantity (numeric, wave; alarm and device when they name one).
	Code  uint32 `json:"code,omitempty"`  // IEEE 11073-10101 code, partition·65536 + term
	MDC   string `json:"mdc,omitempty"`   // reference id, e.g. MDC_PULS_OXIM_SAT_O2
	Label string `json:"label,omitempty"` // what clinicians read: HR, SpO2, II
	Unit  string `json:"unit,omitempty"`  // UCUM

	// The monitor channel (numeric, wave, alarm, device): one code on two channels (two
	// temperature probes) is two series, told apart by Channel.
	Channel      string `json:"channel,omitempty"`       // the monitor's channel ID: HL7 OBX-4, Datex slot, IntelliVue handle
	ChannelLabel string `json:"channel_label,omitempty"` // what the monitor shows for the channel: T1, ART, ESO
	Primary      bool   `json:"primary,omitempty"`       // the monitor marks this channel as the one for its quantity

	// Numeric.
	Value    *float64  `json:"value,omitempty"`   // absent when the monitor sent no value
	Measured time.Time `json:"measured,omitzero"` // episodic measurements (NIBP): when taken
	Invalid  bool      `json:"invalid,omitempty"` // the monitor flagged it questionable
	Rate     float64   `json:"rate,omitempty"`    // wave: samples per second
	Start    time.Time `json:"start,omitzero"`    // wave: first sample on the box's steady axis
	Gap      bool      `json:"gap,omitempty"`     // wave: samples before this one were lost
	Samples  Samples   `json:"samples,omitempty"` // wave: in Unit; null where the monitor had none

	// Alarm and device event.
	Priority string `json:"priority,omitempty"` // alarm: none, low, medium, high
	State    string `json:"state,omitempty"`    // alarm: raised, cleared; device: connected…; receipt: delivered, read
	Text     string `json:"text,omitempty"`     // alarm text as the monitor shows it; control text
	Detail   string `json:"detail,omitempty"`   // device event detail

	// Replay, in an ack, asks the box to send again everything after Seq: the hub
	// had to refuse messages it could not store.
	Replay bool `json:"replay,omitempty"`

	// Receipt and control.
	Ref  uint64 `json:"ref,omitempty"`  // receipt: the control message's seq
	ID   string `json:"id,omitempty"`   // control: the hub's identifier of the message
	From string `json:"from,omitempty"` // control: who sent it, as the hub names them

	// Crew messages (crew.go).
	Card  *PatientCard `json:"card,omitempty"`  // patient: the crew's card, whole
	SOP   string       `json:"sop,omitempty"`   // ecg: SOP Instance UID of the DICOM ECG
	Study string       `json:"study,omitempty"` // ecg: its Study Instance UID

	MonitorTime time.Time `json:"monitor_time,omitzero"` // the monitor's clock
	BoxTime     time.Time `json:"box_time,omitzero"`     // the box's clock when it read the data
	HubTime     time.Time `json:"hub_time,omitzero"`     // control: the hub's clock when sent
}

// Reliable reports whether a box message of this type travels on LabelReliable and
// sits in the box's durable ring until acknowledged.
func Reliable(typ string) bool {
	switch typ {
	case TypeNumeric, TypeAlarm, TypeDevice, TypeReceipt, TypePatient, TypeECG:
		return true
	}
	return false
}

// FromEvent turns one bus message into wire messages, without Seq and Epoch (the
// Outbox assigns them): one for a numeric, alarm or device event, one per chunk of at
// most MaxWaveSamples for a wave block. The events' times go across in UTC.
func FromEvent(device string, m telemetry.Message) []Message {
	base := Message{V: Version, Device: device, Source: m.Source}
	switch ev := m.Event.(type) {
	case *telemetry.Numeric:
		msg := base
		msg.Type = TypeNumeric
		setQuantity(&msg, ev.Code, ev.Ref, ev.Unit)
		setChannel(&msg, ev.Channel)
		if !math.IsNaN(ev.Value) && !math.IsInf(ev.Value, 0) {
			v := ev.Value
			msg.Value = &v
		}
		msg.Measured = utc(ev.Measured)
		msg.Invalid = ev.Invalid
		msg.MonitorTime, msg.BoxTime = utc(ev.MonitorTime), utc(ev.ReceiveTime)
		return []Message{msg}
	case *telemetry.Wave:
		return waveChunks(base, ev)
	case *telemetry.Alarm:
		msg := base
		msg.Type = TypeAlarm
		if ev.Code != 0 {
			setQuantity(&msg, ev.Code, "", "")
		}
		setChannel(&msg, ev.Channel)
		msg.Priority = ev.Priority.String()
		msg.State = "cleared"
		if ev.On {
			msg.State = "raised"
		}
		msg.Text = clip(ev.Text, maxDetail)
		msg.MonitorTime, msg.BoxTime = utc(ev.MonitorTime), utc(ev.ReceiveTime)
		return []Message{msg}
	case *telemetry.DeviceEvent:
		msg := base
		msg.Type = TypeDevice
		if ev.Code != 0 {
			setQuantity(&msg, ev.Code, "", "")
		}
		setChannel(&msg, ev.Channel)
		msg.State = ev.State.String()
		msg.Detail = clip(ev.Detail, maxDetail)
		msg.BoxTime = utc(ev.ReceiveTime)
		return []Message{msg}
	}
	return nil
}

// waveChunks splits a block so that no message exceeds MaxWaveSamples. Each chunk
// starts where the previous one ended on the steady axis; only the first carries the
// block's gap flag, because the hole is before the block, not inside it.
func waveChunks(base Message, w *telemetry.Wave) []Message {
	if len(w.Samples) == 0 || !(w.Rate > 0) {
		return nil
	}
	out := make([]Message, 0, (len(w.Samples)+MaxWaveSamples-1)/MaxWaveSamples)
	for off := 0; off < len(w.Samples); off += MaxWaveSamples {
		end := min(off+MaxWaveSamples, len(w.Samples))
		shift := time.Duration(float64(off) / w.Rate * float64(time.Second))
		msg := base
		msg.Type = TypeWave
		setQuantity(&msg, w.Code, w.Ref, w.Unit)
		setChannel(&msg, w.Channel)
		msg.Rate = w.Rate
		msg.Start = utc(w.Start.Add(shift))
		if !w.MonitorStart.IsZero() {
			msg.MonitorTime = utc(w.MonitorStart.Add(shift))
		}
		msg.BoxTime = utc(w.ReceiveTime)
		msg.Samples = Samples(w.Samples[off:end])
		msg.Invalid = w.Invalid
		msg.Gap = w.Gap && off == 0
		out = append(out, msg)
	}
	return out
}

// setQuantity names the quantity: by mdc.go, else by the monitor's own reference id
// (ref), else MDC_CODE_<n>.
func setQuantity(m *Message, c telemetry.Code, ref, unit string) {
	m.Code = uint32(c)
	m.MDC = clip(telemetry.NameOf(c, ref), maxShort)
	if q, ok := telemetry.Lookup(c); ok {
		m.Label = q.Label
	}
	m.Unit = clip(unit, maxUnit)
}

func setChannel(m *Message, ch telemetry.Channel) {
	m.Channel = clip(ch.ID, maxShort)
	m.ChannelLabel = clip(ch.Label, maxUnit)
	m.Primary = ch.Primary
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// clip shortens a monitor-supplied string to n bytes on a rune boundary, so a
// monitor's long text cannot make a message the decoder refuses.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// Marshal checks m as Decode would and returns its JSON, so that nothing leaves one
// side that the other side refuses.
func Marshal(m *Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("vitals: encode %s seq %d: %w", m.Type, m.Seq, err)
	}
	if len(data) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %s seq %d encodes to %d bytes, more than %d", ErrInvalid, m.Type, m.Seq, len(data), MaxMessageBytes)
	}
	return data, nil
}
