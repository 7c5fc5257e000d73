package pgstate

import (
	"errors"
	"testing"
	"time"

	"lifeline/internal/hubstate"
)

// TestMigrationFromVersion6: a box's live session marked at version 6, before hubs
// said where their viewers connect, is still where it was after the step to version
// 7, with no viewer address; the first hub then records its viewer-token key, and a
// hub mark now carries its address.
func TestMigrationFromVersion6(t *testing.T) {
	dsn := databases(t)(t)
	s, err := open(bg, dsn, 6)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	if _, err := s.pool.Exec(bg, `INSERT INTO live_sessions (device, hub, seen_at) VALUES ('AMB-1', 'hub-a', $1)`, at); err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptViewerKey(bg, "KEY-A"); err == nil {
		t.Fatal("recorded a viewer-token key at version 6; want the missing table's error")
	}
	s.Close()

	s, err = Open(bg, dsn)
	if err != nil {
		t.Fatalf("migrate from version 6: %v", err)
	}
	defer s.Close()
	if l, err := s.LiveAt(bg, "AMB-1"); err != nil || l.Hub != "hub-a" || l.ViewerURL != "" || !l.At.Equal(at) {
		t.Fatalf("a session marked at version 6, after the step: %+v, %v", l, err)
	}
	if _, err := s.ViewerKey(bg); !errors.Is(err, hubstate.ErrNotFound) {
		t.Fatalf("the viewer-token key after the step: %v, want none recorded", err)
	}
	if err := s.AdoptViewerKey(bg, "KEY-A"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkLive(bg, "hub-b", "https://hub-b.example:8444", []string{"AMB-1"}, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.LiveAt(bg, "AMB-1"); l.Hub != "hub-b" || l.ViewerURL != "https://hub-b.example:8444" {
		t.Fatalf("a mark after the step: %+v", l)
	}
}
