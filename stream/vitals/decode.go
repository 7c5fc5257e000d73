package vitals

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
)

// ErrInvalid is wrapped by every error Decode returns for a message it refuses.
var ErrInvalid = errors.New("vitals: invalid message")

// VersionError is returned when a message carries a version this build does not read.
type VersionError struct{ Got int }

func (e *VersionError) Error() string {
	if e.Got == 0 {
		return fmt.Sprintf("vitals: message has no version \"v\"; this build reads v %d", Version)
	}
	return fmt.Sprintf("vitals: message version %d is not supported; this build reads v %d", e.Got, Version)
}

// Unwrap makes a VersionError match ErrInvalid.
func (e *VersionError) Unwrap() error { return ErrInvalid }

// controlType is what a control message's type must look like: a short lower-case
// word, so the ED screen can add request types without a new version.
var controlType = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Decode parses and checks one message from the network. It refuses, with an error
// wrapping ErrInvalid that says what is wrong, anything over MaxMessageBytes, any
// version but Version, unknown box message types, and fields out of their bounds.
// Types it does not know are taken as control messages when they look like one.
func Decode(data []byte) (Message, error) {
	var m Message
	if len(data) > MaxMessageBytes {
		return m, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(data), MaxMessageBytes)
	}
	// Read the version first, so a future format is refused for what it is rather
	// than for a field this build cannot parse.
	var head struct {
		V json.RawMessage `json:"v"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return m, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var v int
	if head.V != nil {
		if err := json.Unmarshal(head.V, &v); err != nil {
			return m, fmt.Errorf("%w: \"v\" is not an integer: %s", ErrInvalid, clip(string(head.V), 32))
		}
	}
	if v != Version {
		return m, &VersionError{Got: v}
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Validate checks the fields of m for its type; Decode calls it, and the Outbox calls
// it before a message is stored so that the box never sends what a hub would refuse.
func (m *Message) Validate() error {
	if m.V != Version {
		return &VersionError{Got: m.V}
	}
	if m.Seq > MaxSeq {
		return m.invalid("seq %d is beyond 2^53-1", m.Seq)
	}
	if err := m.checkLengths(); err != nil {
		return err
	}
	switch m.Type {
	case TypeNumeric:
		return m.checkNumeric()
	case TypeWave:
		return m.checkWave()
	case TypeAlarm:
		if len(m.Text) > maxDetail {
			return m.invalid("alarm text is %d bytes, more than %d", len(m.Text), maxDetail)
		}
		return m.checkBox(oneOf(m.Priority, "none", "low", "medium", "high"), "priority", m.Priority,
			oneOf(m.State, "raised", "cleared"))
	case TypeDevice:
		return m.checkBox(oneOf(m.State, deviceStates...), "state", m.State, true)
	case TypeReceipt:
		if m.Ref == 0 {
			return m.invalid("no ref")
		}
		return m.checkBox(oneOf(m.State, "delivered", "read"), "state", m.State, true)
	case TypePatient:
		return m.checkPatient()
	case TypeECG:
		return m.checkECG()
	case TypeAck:
		if m.Epoch == "" {
			return m.invalid("no epoch")
		}
		return nil
	}
	if !controlType.MatchString(m.Type) {
		return m.invalid("unknown type %q", clip(m.Type, 32))
	}
	if m.Seq == 0 {
		return m.invalid("no seq")
	}
	return nil
}

var deviceStates = []string{"connected", "disconnected", "silent", "lead-off", "sensor-off", "sensor-on", "no-signal"}

func (m *Message) checkLengths() error {
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"epoch", m.Epoch, maxShort}, {"device", m.Device, maxDevice}, {"source", m.Source, maxSource},
		{"mdc", m.MDC, maxShort}, {"label", m.Label, maxUnit}, {"unit", m.Unit, maxUnit},
		{"priority", m.Priority, maxUnit}, {"state", m.State, maxUnit}, {"text", m.Text, maxText},
		{"detail", m.Detail, maxDetail}, {"id", m.ID, maxShort}, {"from", m.From, maxShort},
		{"channel", m.Channel, maxShort}, {"channel_label", m.ChannelLabel, maxUnit},
	} {
		if len(f.v) > f.max {
			return m.invalid("%s is %d bytes, more than %d", f.name, len(f.v), f.max)
		}
	}
	return nil
}

// checkBox checks what every box message needs: a seq, the epoch, the device.
func (m *Message) checkBox(ok bool, field, value string, stateOK bool) error {
	switch {
	case m.Seq == 0:
		return m.invalid("no seq")
	case m.Epoch == "":
		return m.invalid("no epoch")
	case m.Device == "":
		return m.invalid("no device")
	case !ok:
		return m.invalid("%s %q unknown", field, value)
	case !stateOK:
		return m.invalid("state %q unknown", m.State)
	case m.BoxTime.IsZero():
		return m.invalid("no box_time")
	}
	return nil
}

func (m *Message) checkNumeric() error {
	if m.Code == 0 && m.MDC == "" {
		return m.invalid("neither code nor mdc")
	}
	if m.Value != nil && (math.IsNaN(*m.Value) || math.IsInf(*m.Value, 0)) {
		return m.invalid("value is not finite")
	}
	return m.checkBox(true, "", "", true)
}

func (m *Message) checkWave() error {
	switch {
	case m.Code == 0 && m.MDC == "":
		return m.invalid("neither code nor mdc")
	case !(m.Rate > 0) || m.Rate > MaxWaveRate:
		return m.invalid("rate %g outside (0, %d]", m.Rate, MaxWaveRate)
	case len(m.Samples) == 0:
		return m.invalid("no samples")
	case len(m.Samples) > MaxWaveSamples:
		return m.invalid("%d samples, more than %d", len(m.Samples), MaxWaveSamples)
	case m.Start.IsZero():
		return m.invalid("no start")
	}
	return m.checkBox(true, "", "", true)
}

func (m *Message) invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s seq %d: %s", ErrInvalid, clip(m.Type, 32), m.Seq, fmt.Sprintf(format, args...))
}

func oneOf(v string, set ...string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}
