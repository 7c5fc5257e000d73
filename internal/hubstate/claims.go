package hubstate

import (
	"context"
	"time"
)

// DeliveryClaims is what an engine that several hubs share offers beside Studies so
// that each delivery to the PACS is made by one hub at a time: a hub claims the
// deliveries it is about to make for a lease, the others pass them over while the
// lease runs, and a claim whose hub died runs out so that another hub takes it. The
// embedded engine, which one hub holds alone, does not offer it; the ingest asks its
// state for it with a type assertion and, finding none, reads DueDeliveries.
type DeliveryClaims interface {
	// ClaimDeliveries claims, for lease from the engine's clock, at most n of the
	// deliveries DueDeliveries would return for now that no other hub holds a
	// running claim on, and returns them and how many deliveries are owed in all. A
	// claim ends when RecordDeliveries records the delivery's outcome, or when its
	// lease runs out. RecordDeliveries ignores the outcome of a delivery whose claim
	// another hub holds now, so that a hub that overran its lease cannot undo what
	// the hub that took the delivery over recorded.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, n int) (due []Instance, pending int, err error)
}
