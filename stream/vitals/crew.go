package vitals

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Message types between the crew and the hospital, besides guidance text and receipts.
const (
	// TypePatient (box → hub, LabelReliable) carries the crew's patient card, whole:
	// each message replaces the previous card of the box.
	TypePatient = "patient"
	// TypeECG (box → hub, LabelReliable) reports a 12-lead ECG the box acquired: its
	// state, and once made, the DICOM UIDs under which the forwarder sends it.
	TypeECG = "ecg"
	// TypeECGRequest (hub → box, LabelControl) asks the box to acquire a 12-lead ECG.
	TypeECGRequest = "ecg12"
)

// ECG acquisition states, in a TypeECG message's State.
const (
	ECGAcquiring = "acquiring" // recording the next ECGSeconds of every lead
	ECGQueued    = "queued"    // made into a DICOM 12-lead ECG and queued STAT for the hub
	ECGFailed    = "failed"    // Detail says why (no ECG on the monitor, leads off…)
)

// PatientCard is what the crew tells the hospital about the patient before arrival.
// Every field is optional: nothing is required to stream, and an empty field means
// "not said", never "normal".
type PatientCard struct {
	AgeBand   string `json:"age_band,omitempty"`  // one of AgeBands
	Sex       string `json:"sex,omitempty"`       // one of Sexes
	Complaint string `json:"complaint,omitempty"` // chief complaint, free text
	// Suspected lists the crew's working diagnoses, from Suspicions.
	Suspected []string `json:"suspected,omitempty"`
	// LastKnownWell is when a suspected stroke patient was last seen well: the
	// thrombolysis window is counted from it.
	LastKnownWell time.Time `json:"last_known_well,omitzero"`
	Triage        int       `json:"triage,omitempty"` // 1 (most urgent) to 5; 0 not given
	// Updated is the box's clock when the crew saved the card.
	Updated time.Time `json:"updated,omitzero"`
}

// The values a card's enumerated fields take.
var (
	AgeBands   = []string{"<1", "1-4", "5-12", "13-17", "18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+"}
	Sexes      = []string{"female", "male", "unknown"}
	Suspicions = []string{"stemi", "stroke", "major_trauma", "sepsis", "cardiac_arrest"}
)

// maxComplaint bounds the chief complaint: a line, not a report.
const maxComplaint = 256

// Check reports the first field of the card that cannot be sent.
func (c *PatientCard) Check() error {
	if c.AgeBand != "" && !oneOf(c.AgeBand, AgeBands...) {
		return fmt.Errorf("patient card: age_band %q is not one of %v", clip(c.AgeBand, 32), AgeBands)
	}
	if c.Sex != "" && !oneOf(c.Sex, Sexes...) {
		return fmt.Errorf("patient card: sex %q is not one of %v", clip(c.Sex, 32), Sexes)
	}
	if len(c.Suspected) > len(Suspicions) {
		return fmt.Errorf("patient card: %d suspected conditions, at most %d", len(c.Suspected), len(Suspicions))
	}
	for _, s := range c.Suspected {
		if !oneOf(s, Suspicions...) {
			return fmt.Errorf("patient card: suspected %q is not one of %v", clip(s, 32), Suspicions)
		}
	}
	if c.Triage < 0 || c.Triage > 5 {
		return fmt.Errorf("patient card: triage %d is not 1 to 5", c.Triage)
	}
	if len(c.Complaint) > maxComplaint {
		return fmt.Errorf("patient card: complaint is %d bytes, more than %d", len(c.Complaint), maxComplaint)
	}
	if !c.LastKnownWell.IsZero() && !oneOf("stroke", c.Suspected...) {
		return errors.New("patient card: last_known_well is for a suspected stroke")
	}
	return nil
}

// ECGSeconds is how much of every lead a 12-lead acquisition records: the standard
// 10 s of a diagnostic ECG.
const ECGSeconds = 10

func (m *Message) checkPatient() error {
	if m.Card == nil {
		return m.invalid("no card")
	}
	if err := m.Card.Check(); err != nil {
		return m.invalid("%v", err)
	}
	return m.checkBox(true, "", "", true)
}

func (m *Message) checkECG() error {
	switch {
	case !oneOf(m.State, ECGAcquiring, ECGQueued, ECGFailed):
		return m.invalid("state %q unknown", m.State)
	case m.State == ECGQueued && (m.SOP == "" || m.Study == ""):
		return m.invalid("a queued ECG names its sop and study")
	case len(m.SOP) > maxShort || len(m.Study) > maxShort:
		return m.invalid("a UID is longer than %d bytes", maxShort)
	}
	return m.checkBox(true, "", "", true)
}

// SendCrew sends a message the crew made (a patient card, an ECG's progress) on the
// reliable channel, and returns once it is on the box's disk: what the crew was told
// is sent survives a power cut. ctx bounds the wait for the commit.
func (o *Outbox) SendCrew(ctx context.Context, msg Message) (uint64, error) {
	msg.V, msg.Device = Version, o.cfg.Device
	if msg.BoxTime.IsZero() {
		msg.BoxTime = time.Now().UTC()
	}
	// Validate as the hub will, with the seq and epoch the ring will give it.
	probe := msg
	probe.Seq, probe.Epoch = 1, o.epoch
	if err := probe.Validate(); err != nil {
		return 0, err
	}
	seq, err := o.enqueue(msg)
	if err != nil {
		return 0, err
	}
	signal(o.flushNow)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		o.mu.Lock()
		durable := o.durable
		o.mu.Unlock()
		if durable >= seq {
			return seq, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("vitals: %s message %d not yet on disk: %w", msg.Type, seq, ctx.Err())
		case <-tick.C:
		}
	}
}
