package pgstate

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"lifeline/internal/hubstate"
)

var _ hubstate.DeliveryClaims = (*Store)(nil)

// processName names a Store's claims when the hub did not name itself (ClaimingAs):
// its machine, its process and a random part, so that two Stores never share it.
func processName() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// ClaimingAs returns the state as seen by the hub named hub in its claims on
// deliveries (ClaimDeliveries). The name must be the hub's own among the hubs on the
// database and the same after the hub restarts (e.g. its machine and data directory),
// so that a restarted hub takes back at once what it had claimed before, while the
// others wait for those claims to run out. The returned Store shares s's connections;
// use one or the other.
func (s *Store) ClaimingAs(hub string) *Store {
	c := *s
	c.hub = hub
	return &c
}

// ClaimDeliveries implements hubstate.DeliveryClaims. The due rows are locked with
// SKIP LOCKED, so that two hubs claiming at the same moment each take other rows
// instead of waiting for one another, and the lease is counted on the database's
// clock, the one clock every hub shares. A hub's own claims are due to it again:
// after it restarts it takes back what it held, and its delivery loop, which makes
// one batch at a time, never holds one claim twice.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, n int) ([]hubstate.Instance, int, error) {
	var due []hubstate.Instance
	pending := 0
	err := s.inTx(ctx, fmt.Sprintf("claim %d deliveries", n), func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM instances WHERE owed AND ($1 = '' OR archive IN ($1, ''))`,
			s.archive).Scan(&pending); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `WITH due AS (
				SELECT sop_instance_uid AS sop FROM instances
				WHERE owed AND ($1 = '' OR archive IN ($1, '')) AND (next_attempt IS NULL OR next_attempt <= $2)
					AND (claimed_until IS NULL OR claimed_until <= now() OR claimed_by = $4)
				ORDER BY next_attempt NULLS FIRST, sop_instance_uid
				LIMIT $3
				FOR UPDATE SKIP LOCKED)
			UPDATE instances SET claimed_by = $4, claimed_until = now() + make_interval(secs => $5)
			FROM due WHERE sop_instance_uid = due.sop
			RETURNING `+instanceColumns, s.archive, now, max(n, 0), s.hub, lease.Seconds())
		if err != nil {
			return err
		}
		due, err = collect(rows, scanInstance)
		return err
	})
	// RETURNING keeps no order: the longest waiting first, as DueDeliveries.
	slices.SortFunc(due, func(a, b hubstate.Instance) int {
		if c := a.NextAttempt.Compare(b.NextAttempt); c != 0 {
			return c
		}
		return cmp.Compare(a.SOPInstanceUID, b.SOPInstanceUID)
	})
	return due, pending, err
}
