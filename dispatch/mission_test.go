package dispatch

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"lifeline/hardware/gnss"
	"lifeline/internal/durable"
)

func openStore(t *testing.T, dir string) *durable.Store {
	t.Helper()
	s, err := durable.Open(filepath.Join(dir, "edge.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMissionStateMachinePersists(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	m, err := NewMission(store, t0)
	if err != nil || m.State() != Available || m.Active() {
		t.Fatalf("new mission %v %v", m.State(), err)
	}
	if err := m.Set(OnScene, t0); !errors.Is(err, ErrTransition) {
		t.Errorf("available → on scene: %v", err)
	}
	for _, s := range []MissionState{Dispatched, EnRoute, OnScene, Transporting} {
		if err := m.Set(s, t0); err != nil {
			t.Fatalf("→ %s: %v", s, err)
		}
	}
	if err := m.Set(Available, t0); !errors.Is(err, ErrTransition) {
		t.Errorf("cancelled with the patient aboard: %v", err)
	}
	if err := m.SetDestination(&Destination{Name: "Guangdong Provincial People's Hospital", Lat: 23.1270, Lon: 113.2760}); err != nil {
		t.Fatal(err)
	}
	again, err := NewMission(store, t0.Add(time.Hour))
	if err != nil || again.State() != Transporting || !again.Active() || again.Status(t0).Destination == nil {
		t.Fatalf("after restart: %v %+v %v", again.State(), again.Status(t0), err)
	}
	if err := again.SetDestination(&Destination{Lat: 91}); err == nil {
		t.Error("a destination off the Earth was accepted")
	}
}

func TestETAFromDistanceAndRecentSpeed(t *testing.T) {
	m, _ := NewMission(nil, time.Time{})
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	dest := &Destination{Name: "hospital", Lat: 23.2, Lon: 113.3}
	m.SetDestination(dest)
	// 2 minutes at 60 km/h, then older samples fall out of the window.
	m.Observe(gnss.Fix{Valid: true, Lat: 23.1, Lon: 113.3, SpeedKmh: 10, Received: t0.Add(-5 * time.Minute)})
	for i := 0; i < 120; i++ {
		m.Observe(gnss.Fix{Valid: true, Lat: 23.1, Lon: 113.3, SpeedKmh: 60, Received: t0.Add(time.Duration(i-119) * time.Second)})
	}
	st := m.Status(t0)
	if st.ETA == nil {
		t.Fatal("no ETA")
	}
	d := gnss.DistanceM(23.1, 113.3, 23.2, 113.3)
	want := time.Duration(d * Circuity / (60 / 3.6) * float64(time.Second)).Round(time.Second)
	if st.ETA.SpeedKmh != 60 || st.ETA.Remaining != want || !st.ETA.Arrival.Equal(t0.Add(want)) || st.ETA.SpeedFloor {
		t.Errorf("ETA %+v, want %v at 60 km/h over %.0f m", st.ETA, want, d)
	}
	// Stopped at a light: the floor speed, flagged.
	for i := 0; i < 120; i++ {
		m.Observe(gnss.Fix{Valid: true, Lat: 23.1, Lon: 113.3, SpeedKmh: 0, Received: t0.Add(time.Duration(i+1) * time.Second)})
	}
	if st := m.Status(t0.Add(2 * time.Minute)); !st.ETA.SpeedFloor || st.ETA.SpeedKmh != MinETASpeedKmh {
		t.Errorf("stopped: %+v", st.ETA)
	}
	// Arrived; and no ETA from a fix older than 30 s.
	m.Observe(gnss.Fix{Valid: true, Lat: 23.2, Lon: 113.3005, SpeedKmh: 20, Received: t0.Add(3 * time.Minute)})
	if st := m.Status(t0.Add(3 * time.Minute)); st.ETA.Remaining != 0 {
		t.Errorf("at the door: %+v", st.ETA)
	}
	if st := m.Status(t0.Add(4 * time.Minute)); st.ETA != nil {
		t.Errorf("ETA from a stale fix: %+v", st.ETA)
	}
}
