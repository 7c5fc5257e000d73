package vitals_test

import (
	"path/filepath"
	"testing"

	"lifeline/internal/durable"
	"lifeline/stream/vitals"
	"lifeline/stream/vitals/historytest"
)

func TestBoltHistory(t *testing.T) {
	historytest.Run(t, func(t *testing.T) func(vitals.HistoryBounds) vitals.HistoryStore {
		// One store file stands for what hubs would share: each opener call is
		// another hub's BoltHistory on it.
		s, err := durable.Open(filepath.Join(t.TempDir(), "hub.db"), 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return func(b vitals.HistoryBounds) vitals.HistoryStore { return vitals.NewBoltHistory(s, b) }
	})
}
