package boltstate

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

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
