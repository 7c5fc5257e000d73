package boltstate

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/hubstate"
	"lifeline/internal/hubstate/hubstatetest"
)

func TestConformance(t *testing.T) {
	hubstatetest.Run(t, func(t *testing.T) hubstatetest.Opener {
		path := filepath.Join(t.TempDir(), "hub.db")
		return func() (hubstate.Store, error) { return Open(path, 0) }
	})
}

// TestSecondProcessIsTold checks that a second opener of the same file is told that
// the state is held, so `lifeline hub enroll` can go through the running hub instead.
func TestSecondProcessIsTold(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path, 50*time.Millisecond); !errors.Is(err, hubstate.ErrHeld) {
		t.Fatalf("second open: %v, want ErrHeld", err)
	}
}

// TestLegacyStudyRecordsMoveToTheirBox opens a hub.db written before study records
// were scoped to their box: each record is found under the box that sent it.
func TestLegacyStudyRecordsMoveToTheirBox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	db, err := durable.Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	legacy := hubstate.Study{StudyUID: "1.2.3", Device: "AMB-1", Expected: map[string]string{"1.2.3.4": "aa"}}
	if err := db.PutJSON(bucketStudies, "1.2.3", legacy); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for range 2 { // the second open finds nothing left to move
		s, err := Open(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.Study(context.Background(), "AMB-1", "1.2.3")
		if err != nil || v.Expected["1.2.3.4"] != "aa" {
			t.Fatalf("legacy study after opening: %+v, %v", v, err)
		}
		if _, err := s.Study(context.Background(), "AMB-2", "1.2.3"); !errors.Is(err, hubstate.ErrNotFound) {
			t.Fatalf("legacy study seen by another box: %v", err)
		}
		if recent, _ := s.RecentStudies(context.Background(), 10); len(recent) != 1 {
			t.Fatalf("%d study records after moving one", len(recent))
		}
		s.Close()
	}
}
