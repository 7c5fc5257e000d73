package edscreen

import (
	"embed"
	"slices"
	"strings"
	"time"
)

//go:embed web
var webFS embed.FS

// Board is the JSON of Prefix/api/boxes: the boxes in the order the board shows them,
// pre-alerts first, then the nearest arrival.
type Board struct {
	// ServerTime is the hub's clock, so the page shows "last contact 4 s ago" by the
	// hub's clock rather than a wall screen's that may be wrong.
	ServerTime time.Time    `json:"server_time"`
	Boxes      []BoxSummary `json:"boxes"`
}

// BoxSummary is one box as the board shows it. Every field but Device is optional: a
// zero value shows as "—" (unknown), never as a made-up value.
type BoxSummary struct {
	Device string `json:"device"`
	// Name is what the crews and the ED call the unit, e.g. "120 急救 07"; empty: Device.
	Name string `json:"name,omitempty"`
	// Live says the box publishes now (a WHIP session at the hub, or at Hub).
	Live bool `json:"live"`
	// Hub names the other hub the box publishes to, when several hubs share their
	// state and it is not this one; its view hands the doctor over to that hub
	// (Config.HandoverPattern). Empty: this hub.
	Hub string `json:"hub,omitempty"`
	// LastContact is when the hub last heard from the box (media, vitals or dispatch).
	LastContact time.Time `json:"last_contact,omitzero"`
	// Link is the box's connection quality, when the hub measures it.
	Link *Link `json:"link,omitempty"`
	// ETA is the expected arrival at this hospital, from dispatch.
	ETA time.Time `json:"eta,omitzero"`
	// Mission is the mission state from dispatch: one of the Mission constants, or
	// another word dispatch uses (shown as it is).
	Mission string `json:"mission,omitempty"`
	// Patient is the crew's patient card, when they filled one in.
	Patient *PatientCard `json:"patient,omitempty"`
	// Alert is set by the screen: the patient card suspects a STEMI or a stroke, for
	// which the ED team must be ready before arrival.
	Alert bool `json:"alert"`
}

// Mission states dispatch reports; the pages name them in both languages.
const (
	MissionDispatched    = "dispatched"   // the ambulance is on its way to the patient
	MissionOnScene       = "on_scene"     // with the patient
	MissionTransporting  = "transporting" // the patient is on board, on the way here
	MissionArrived       = "arrived"      // at this hospital
	MissionCancelled     = "cancelled"    // the mission was called off
	MissionOtherHospital = "diverted"     // going to another hospital
)

// Link is a box's connection quality as the hub measures it.
type Link struct {
	// Quality sums it up for the board: "good", "fair", "poor" or "lost".
	Quality string `json:"quality"`
	// RTTMillis is the round-trip time, LossPercent the packet loss, BitrateKbps what
	// arrives from the box; zero when not measured.
	RTTMillis   float64 `json:"rtt_ms,omitempty"`
	LossPercent float64 `json:"loss_percent,omitempty"`
	BitrateKbps float64 `json:"bitrate_kbps,omitempty"`
}

// Link qualities.
const (
	LinkGood = "good"
	LinkFair = "fair"
	LinkPoor = "poor"
	LinkLost = "lost"
)

// PatientCard is what the crew tells the ED about the patient before arrival. All
// fields are optional.
type PatientCard struct {
	// AgeBand is the patient's age range as the crew picked it, e.g. "60-69" or "80+".
	AgeBand string `json:"age_band,omitempty"`
	// Sex is "male", "female" or "unknown".
	Sex string `json:"sex,omitempty"`
	// Complaint is the chief complaint in the crew's words.
	Complaint string `json:"complaint,omitempty"`
	// Suspected lists the conditions the crew suspects: the Condition constants.
	Suspected []string `json:"suspected,omitempty"`
	// LastKnownWell is, for a suspected stroke, when the patient was last seen well:
	// it decides thrombolysis and thrombectomy.
	LastKnownWell time.Time `json:"last_known_well,omitzero"`
	// Triage is the triage level, 1 (most urgent) to 5; 0 unknown.
	Triage int `json:"triage,omitempty"`
	// Updated is when the crew last changed the card.
	Updated time.Time `json:"updated,omitzero"`
}

// Conditions a crew may suspect.
const (
	ConditionSTEMI         = "stemi"
	ConditionStroke        = "stroke"
	ConditionMajorTrauma   = "major_trauma"
	ConditionSepsis        = "sepsis"
	ConditionCardiacArrest = "cardiac_arrest"
)

// PreAlert reports whether the card suspects a condition the ED team must be called
// for before arrival: a STEMI (the cath lab) or a stroke (the stroke team, CT).
func (p *PatientCard) PreAlert() bool {
	return p != nil && (slices.Contains(p.Suspected, ConditionSTEMI) || slices.Contains(p.Suspected, ConditionStroke))
}

// normalize fills what the screen derives and drops what cannot be shown truthfully.
func (b *BoxSummary) normalize() {
	if b.Patient != nil {
		if b.Patient.Triage < 0 || b.Patient.Triage > 5 {
			b.Patient.Triage = 0 // unknown rather than a level nobody defined
		}
		for i, c := range b.Patient.Suspected {
			b.Patient.Suspected[i] = strings.ToLower(strings.TrimSpace(c))
		}
	}
	b.Alert = b.Patient.PreAlert()
}

// sortBoard orders the boxes as the board shows them: pre-alerts first, then by
// arrival (known ETAs first, soonest first), then by device.
func sortBoard(list []BoxSummary) {
	slices.SortStableFunc(list, func(a, b BoxSummary) int {
		switch {
		case a.Alert != b.Alert:
			if a.Alert {
				return -1
			}
			return 1
		case a.ETA.IsZero() != b.ETA.IsZero():
			if a.ETA.IsZero() {
				return 1
			}
			return -1
		case !a.ETA.Equal(b.ETA):
			return a.ETA.Compare(b.ETA)
		}
		return strings.Compare(a.Device, b.Device)
	})
}
