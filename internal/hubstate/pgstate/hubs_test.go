package pgstate

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/internal/hubstate"
	"lifeline/internal/wait"
)

// twoHubs opens one fresh database twice, as two hub processes would, each with its
// own connections.
func twoHubs(t *testing.T, fresh func(testing.TB) string) (a, b *Store) {
	t.Helper()
	dsn := fresh(t)
	var err error
	if a, err = Open(bg, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if b, err = Open(bg, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// lockWaiters counts the database's sessions that wait for a lock another holds.
func lockWaiters(t *testing.T, s *Store) int {
	var n int
	if err := s.pool.QueryRow(bg, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`).Scan(&n); err != nil {
		t.Errorf("read pg_stat_activity: %v", err)
	}
	return n
}

// TestHubs shows the "exactly once" of hubstate holding between two hubs, each with
// its own connections to one database.
func TestHubs(t *testing.T) {
	fresh := databases(t)
	epoch := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

	// One code presented on hub A and hub B at once: B's redemption waits on the
	// code's row while A signs the certificate, then finds the code used.
	t.Run("CodeRedeemedOnceAcrossHubs", func(t *testing.T) {
		a, b := twoHubs(t, fresh)
		if err := a.IssueCode(bg, hubstate.EnrolmentCode{Hash: "h", Device: "AMB-1", Expires: epoch.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		var issued atomic.Int32
		started := make(chan struct{})
		bErr := make(chan error, 1)
		idA, err := a.RedeemCode(bg, "h", epoch, func(string) (hubstate.Certificate, error) {
			issued.Add(1)
			go func() {
				close(started)
				_, err := b.RedeemCode(bg, "h", epoch, func(string) (hubstate.Certificate, error) {
					issued.Add(1)
					return hubstate.Certificate{Serial: "bb"}, nil
				})
				bErr <- err
			}()
			<-started
			// A holds the code's row until it commits: B must be seen waiting for it,
			// or it did not lock what it judged.
			if err := wait.Until(10*time.Second, func() bool { return lockWaiters(t, a) > 0 }); err != nil {
				return hubstate.Certificate{}, fmt.Errorf("hub B never waited for hub A's lock on the code")
			}
			return hubstate.Certificate{Serial: "aa"}, nil
		})
		if err != nil || idA != "AMB-1" {
			t.Fatalf("hub A's redemption: %q, %v", idA, err)
		}
		if err := <-bErr; !errors.Is(err, hubstate.ErrCodeUsed) {
			t.Fatalf("hub B's redemption of the same code: %v, want ErrCodeUsed", err)
		}
		if n := issued.Load(); n != 1 {
			t.Fatalf("%d certificates issued for one code", n)
		}
		if d, _ := b.Device(bg, "AMB-1"); d.Serial != "aa" {
			t.Fatalf("device as hub B reads it: %+v, want hub A's certificate", d)
		}
	})

	// Many racers on each hub, no choreography: one wins.
	t.Run("CodeRaceOnTwoHubs", func(t *testing.T) {
		a, b := twoHubs(t, fresh)
		for round := range 10 {
			hash := fmt.Sprintf("h%d", round)
			if err := a.IssueCode(bg, hubstate.EnrolmentCode{Hash: hash, Device: fmt.Sprintf("AMB-%d", round), Expires: epoch.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			var won atomic.Int32
			var wg sync.WaitGroup
			for i := range 8 {
				hub := []*Store{a, b}[i%2]
				wg.Go(func() {
					_, err := hub.RedeemCode(bg, hash, epoch, func(string) (hubstate.Certificate, error) {
						return hubstate.Certificate{Serial: fmt.Sprint(i)}, nil
					})
					switch {
					case err == nil:
						won.Add(1)
					case !errors.Is(err, hubstate.ErrCodeUsed):
						t.Errorf("losing redemption: %v", err)
					}
				})
			}
			wg.Wait()
			if won.Load() != 1 {
				t.Fatalf("round %d: %d redemptions of one code won across two hubs", round, won.Load())
			}
		}
	})

	// The same chunk appended through both hubs at once moves the offset once.
	t.Run("OffsetMovesOnceAcrossHubs", func(t *testing.T) {
		a, b := twoHubs(t, fresh)
		if _, err := a.CreateUpload(bg, hubstate.Upload{ID: "u", Device: "AMB-1", SOPInstanceUID: "1.2.3.4", StudyUID: "1.2.3", Length: 1000, SHA256: "aa"}); err != nil {
			t.Fatal(err)
		}
		for from := int64(0); from < 1000; from += 100 {
			var moved atomic.Int32
			var wg sync.WaitGroup
			for i := range 6 {
				hub := []*Store{a, b}[i%2]
				wg.Go(func() {
					_, err := hub.AdvanceUpload(bg, "u", from, from+100)
					switch {
					case err == nil:
						moved.Add(1)
					case !errors.Is(err, hubstate.ErrOffsetMoved):
						t.Errorf("racing append: %v", err)
					}
				})
			}
			wg.Wait()
			if moved.Load() != 1 {
				t.Fatalf("append at %d moved the offset %d times", from, moved.Load())
			}
		}
	})

	// The last two instances of a study archived on two hubs at once: the study is
	// announced verified exactly once, never zero times, never twice.
	t.Run("StudyCompletedOnceAcrossHubs", func(t *testing.T) {
		a, b := twoHubs(t, fresh)
		for round := range 15 {
			study := fmt.Sprintf("1.2.826.0.1.3680043.10.1311.9.%d", round)
			ups := []hubstate.Upload{
				{ID: fmt.Sprintf("a%d", round), Device: "AMB-1", SOPInstanceUID: study + ".1", StudyUID: study, Length: 1, SHA256: "x1"},
				{ID: fmt.Sprintf("b%d", round), Device: "AMB-1", SOPInstanceUID: study + ".2", StudyUID: study, Length: 1, SHA256: "x2"},
			}
			m := hubstate.Manifest{StudyUID: study, Device: "AMB-1", Instances: map[string]string{}, At: epoch}
			for _, u := range ups {
				m.Instances[u.SOPInstanceUID] = u.SHA256
				if _, err := a.CreateUpload(bg, u); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.RecordManifest(bg, m); err != nil {
				t.Fatal(err)
			}
			var verified atomic.Int32
			var wg sync.WaitGroup
			for i, hub := range []*Store{a, b} {
				u := ups[i]
				wg.Go(func() {
					got, err := hub.ArchiveInstance(bg, u.ID, hubstate.Instance{SOPInstanceUID: u.SOPInstanceUID, StudyUID: study,
						Device: u.Device, Size: 1, SHA256: u.SHA256, ReceivedAt: epoch, VerifiedAt: epoch}, true)
					if err != nil {
						t.Errorf("archive %s: %v", u.SOPInstanceUID, err)
					}
					if got.Study.Verified {
						verified.Add(1)
					}
				})
			}
			wg.Wait()
			if verified.Load() != 1 {
				t.Fatalf("round %d: the study was announced verified %d times", round, verified.Load())
			}
		}
	})
}
