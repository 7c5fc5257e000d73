package pgstate

import (
	"context"
	"testing"

	"lifeline/internal/hubstate"
	"lifeline/internal/hubstate/hubstatetest"
	"lifeline/internal/peers"
)

var bg = context.Background()

// databases makes a fresh, empty database per caller on one throwaway cluster
// (peers.PostgresDatabases).
func databases(t testing.TB) func(t testing.TB) string {
	return peers.PostgresDatabases(t, "hub")
}

func TestConformance(t *testing.T) {
	fresh := databases(t)
	hubstatetest.Run(t, func(t *testing.T) hubstatetest.Opener {
		dsn := fresh(t)
		return func() (hubstate.Store, error) { return Open(bg, dsn) }
	})
}
