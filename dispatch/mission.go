package dispatch

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"lifeline/hardware/gnss"
	"lifeline/internal/durable"
)

// MissionState is where the ambulance is in its mission.
type MissionState string

// Mission states, in the order a mission goes through them.
const (
	Available    MissionState = "available"
	Dispatched   MissionState = "dispatched"
	EnRoute      MissionState = "en route"
	OnScene      MissionState = "on scene"
	Transporting MissionState = "transporting"
	AtHospital   MissionState = "at hospital"
)

// next lists the states each state may move to. A mission may be cancelled (back to
// available) at any point before the patient is aboard; once transporting, it ends
// at the hospital.
var next = map[MissionState][]MissionState{
	Available:    {Dispatched},
	Dispatched:   {EnRoute, Available},
	EnRoute:      {OnScene, Available},
	OnScene:      {Transporting, Available},
	Transporting: {AtHospital},
	AtHospital:   {Available},
}

// ErrTransition is returned for a state change the mission does not allow.
var ErrTransition = errors.New("dispatch: mission state change not allowed")

// Destination is where the ambulance is going (the scene, then the hospital).
type Destination struct {
	Name string  `json:"name"`
	Lat  float64 `json:"lat"` // WGS-84
	Lon  float64 `json:"lon"`
}

// ETA limits and assumptions. The estimate is the great-circle distance to the
// destination times Circuity, divided by the recent speed. It knows no roads and no
// traffic: it is right on average in a city grid and optimistic across rivers and
// mountains, and it is what can be said without a road network on the box.
const (
	// Circuity is the typical ratio of road distance to great-circle distance in
	// cities (published network-circuity studies find 1.2–1.4).
	Circuity = 1.3
	// SpeedWindow is how far back the recent speed is averaged.
	SpeedWindow = 2 * time.Minute
	// MinETASpeedKmh floors the speed used, so a stop at a light does not make the
	// ETA infinite; below it the ETA says so (Assumed).
	MinETASpeedKmh = 20.0
	// ArrivedWithinM: closer than this the ETA is zero.
	ArrivedWithinM = 100.0
	// fixMaxAge: an ETA from an older position is not given.
	fixMaxAge = 30 * time.Second
)

// ETA is an estimated time of arrival.
type ETA struct {
	Arrival     time.Time     `json:"arrival"`
	Remaining   time.Duration `json:"remaining_ns"`
	DistanceM   float64       `json:"distance_m"`    // great-circle
	SpeedKmh    float64       `json:"speed_kmh"`     // the speed used
	SpeedFloor  bool          `json:"speed_assumed"` // the recent speed was below MinETASpeedKmh
	Destination string        `json:"destination"`
}

// MissionStatus is the mission as the status page and the hub see it.
type MissionStatus struct {
	State       MissionState `json:"state"`
	Since       time.Time    `json:"since"`
	Destination *Destination `json:"destination,omitempty"`
	ETA         *ETA         `json:"eta,omitempty"`
}

// Mission is the ambulance's mission state machine with its destination and ETA. It
// is kept in the durable store, so a restarted box resumes its mission.
type Mission struct {
	store *durable.Store

	mu     sync.Mutex
	state  MissionState
	since  time.Time
	dest   *Destination
	speeds []speedSample
	last   gnss.Fix
}

type speedSample struct {
	at  time.Time
	kmh float64
}

type missionRecord struct {
	State MissionState `json:"state"`
	Since time.Time    `json:"since"`
	Dest  *Destination `json:"destination,omitempty"`
}

const missionKey = "mission"

// NewMission loads the mission from store (nil: not persisted), or starts available.
func NewMission(store *durable.Store, now time.Time) (*Mission, error) {
	m := &Mission{store: store, state: Available, since: now}
	if store != nil {
		var rec missionRecord
		err := store.GetJSON(metaBucket, missionKey, &rec)
		switch {
		case err == nil:
			if _, ok := next[rec.State]; !ok {
				return nil, fmt.Errorf("dispatch: stored mission state %q is unknown", rec.State)
			}
			m.state, m.since, m.dest = rec.State, rec.Since, rec.Dest
		case !errors.Is(err, durable.ErrNotFound):
			return nil, fmt.Errorf("dispatch: load mission: %w", err)
		}
	}
	return m, nil
}

// Set moves the mission to state at now, if the state machine allows it. Going back
// to available clears the destination.
func (m *Mission) Set(state MissionState, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if state == m.state {
		return nil
	}
	allowed := false
	for _, s := range next[m.state] {
		allowed = allowed || s == state
	}
	if !allowed {
		return fmt.Errorf("%w: from %q to %q", ErrTransition, m.state, state)
	}
	prevState, prevSince, prevDest := m.state, m.since, m.dest
	m.state, m.since = state, now
	if state == Available {
		m.dest = nil
	}
	if err := m.saveLocked(); err != nil {
		m.state, m.since, m.dest = prevState, prevSince, prevDest
		return err
	}
	return nil
}

// SetDestination sets (or with nil clears) the destination.
func (m *Mission) SetDestination(d *Destination) error {
	if d != nil && (math.Abs(d.Lat) > 90 || math.Abs(d.Lon) > 180) {
		return fmt.Errorf("dispatch: destination %q at (%v, %v) is not on Earth", d.Name, d.Lat, d.Lon)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dest = d
	return m.saveLocked()
}

func (m *Mission) saveLocked() error {
	if m.store == nil {
		return nil
	}
	if err := m.store.PutJSON(metaBucket, missionKey, missionRecord{m.state, m.since, m.dest}); err != nil {
		return fmt.Errorf("dispatch: save mission: %w", err)
	}
	return nil
}

// State is the current mission state.
func (m *Mission) State() MissionState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// Active reports whether the ambulance is on a mission (anything but available):
// then it reports every second.
func (m *Mission) Active() bool { return m.State() != Available }

// Observe takes a fix for the ETA: the position and the recent speed.
func (m *Mission) Observe(f gnss.Fix) {
	if !f.Valid {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = f
	m.speeds = append(m.speeds, speedSample{f.Received, f.SpeedKmh})
	cut := 0
	for cut < len(m.speeds) && f.Received.Sub(m.speeds[cut].at) > SpeedWindow {
		cut++
	}
	m.speeds = m.speeds[cut:]
}

// Status is the mission with its ETA at now (no ETA without a destination or a
// recent fix).
func (m *Mission) Status(now time.Time) MissionStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := MissionStatus{State: m.state, Since: m.since, Destination: m.dest}
	if m.dest == nil || !m.last.Valid || now.Sub(m.last.Received) > fixMaxAge {
		return st
	}
	sum := 0.0
	for _, s := range m.speeds {
		sum += s.kmh
	}
	speed := sum / float64(len(m.speeds))
	eta := ETA{DistanceM: gnss.DistanceM(m.last.Lat, m.last.Lon, m.dest.Lat, m.dest.Lon), SpeedKmh: speed, Destination: m.dest.Name}
	if speed < MinETASpeedKmh {
		eta.SpeedKmh, eta.SpeedFloor = MinETASpeedKmh, true
	}
	if eta.DistanceM > ArrivedWithinM {
		secs := eta.DistanceM * Circuity / (eta.SpeedKmh / 3.6)
		eta.Remaining = time.Duration(secs * float64(time.Second)).Round(time.Second)
	}
	eta.Arrival = now.Add(eta.Remaining)
	st.ETA = &eta
	return st
}
