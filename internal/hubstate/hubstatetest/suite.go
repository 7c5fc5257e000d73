// Package hubstatetest is the behaviour every hubstate engine must show, as one suite
// that an engine's tests run on their own constructor. The embedded engine runs it
// today; a shared engine (PostgreSQL) runs the same tests, so callers can rely on
// hubstate's documented behaviour whichever engine holds the state.
package hubstatetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"lifeline/internal/hubstate"
)

// Opener opens the same state every time it is called, so that a test can close a
// Store and open it again to see what survived.
type Opener func() (hubstate.Store, error)

// Run runs every behaviour, each on fresh, empty state that newState makes.
func Run(t *testing.T, newState func(t *testing.T) Opener) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, open Opener)
	}{
		{"CodeEnrolsOnce", testCodeEnrolsOnce},
		{"CodeRedeemedOnceUnderRace", testCodeRedeemedOnceUnderRace},
		{"FailedIssueLeavesCodeUnused", testFailedIssueLeavesCodeUnused},
		{"ExpiredAndUnknownCodes", testExpiredAndUnknownCodes},
		{"RevokedStaysRevoked", testRevokedStaysRevoked},
		{"DevicesInIDOrder", testDevicesInIDOrder},
		{"CancelledContextWritesNothing", testCancelledContextWritesNothing},
		{"UploadResumesWhereItWas", testUploadResumesWhereItWas},
		{"AdvanceIsCompareAndSet", testAdvanceIsCompareAndSet},
		{"ArchiveCompletesStudy", testArchiveCompletesStudy},
		{"DuplicateKeptOnce", testDuplicateKeptOnce},
		{"ClashIsQuarantined", testClashIsQuarantined},
		{"StudiesScopedToBox", testStudiesScopedToBox},
		{"ManifestGrowthReopensStudy", testManifestGrowthReopensStudy},
		{"DeliveryRetriesThenCompletes", testDeliveryRetriesThenCompletes},
		{"RecentStudiesLatestFirst", testRecentStudiesLatestFirst},
		{"EverythingSurvivesReopen", testEverythingSurvivesReopen},
		{"UserCreatedOnce", testUserCreatedOnce},
		{"ChangeUserIsAtomic", testChangeUserIsAtomic},
		{"SessionLifecycle", testSessionLifecycle},
		{"SessionsPerUserBounded", testSessionsPerUserBounded},
		{"SignInLinkOnceUnderRace", testSignInLinkOnceUnderRace},
		{"DropStale", testDropStale},
		{"AccountsSurviveReopen", testAccountsSurviveReopen},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newState(t)) })
	}
}

// mustOpen opens the state and closes it when the test ends.
func mustOpen(t *testing.T, open Opener) hubstate.Store {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// epoch is a fixed time, so that expiries and retry times do not depend on the clock.
var epoch = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

var bg = context.Background()

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
