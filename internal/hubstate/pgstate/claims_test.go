package pgstate

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"lifeline/internal/hubstate"
	"lifeline/internal/wait"
)

// sharedArchive is the archive name of hubs whose files are in one shared directory.
const sharedArchive = "shared:/srv/lifeline-shared/archive"

// claimSOPs claims deliveries through s and lists their SOP Instance UIDs.
func claimSOPs(t *testing.T, s *Store, lease time.Duration) []string {
	t.Helper()
	due, _, err := s.ClaimDeliveries(bg, time.Now(), lease, 10)
	if err != nil {
		t.Fatal(err)
	}
	var sops []string
	for _, d := range due {
		sops = append(sops, d.SOPInstanceUID)
	}
	return sops
}

// TestDeliveryClaimedByOneHub: two hubs on one shared archive. What hub A claimed is
// not offered to hub B while A's lease runs; when A dies (its lease runs out with no
// outcome) B takes the delivery over, and an outcome A records afterwards changes
// nothing: the instance is delivered once, in one attempt.
func TestDeliveryClaimedByOneHub(t *testing.T) {
	plain, other := openTwo(t, databases(t)(t))
	a := plain.InArchive(sharedArchive).ClaimingAs("hub-a:/var/lib/lifeline/hub")
	b := other.InArchive(sharedArchive).ClaimingAs("hub-b:/var/lib/lifeline/hub")
	archived(t, a, "u1", "1.2.3.1")
	archived(t, b, "u2", "1.2.3.2")

	const lease = 2 * time.Second
	if got := claimSOPs(t, a, lease); !slices.Equal(got, []string{"1.2.3.1", "1.2.3.2"}) {
		t.Fatalf("hub A claimed %v, want both instances of the shared archive", got)
	}
	if got := claimSOPs(t, b, lease); len(got) != 0 {
		t.Fatalf("hub B claimed %v while hub A's claims run; want none", got)
	}
	if got := claimSOPs(t, a, lease); len(got) != 2 {
		t.Fatalf("hub A, restarted, claims %v of its own claims, want both back", got)
	}
	// Hub A records one delivery, then dies holding the other's claim.
	if _, err := a.RecordDeliveries(bg, []hubstate.DeliveryOutcome{{SOPInstanceUID: "1.2.3.1", At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	var took []string
	wait.For(t, 10*time.Second, "hub B to take over hub A's claim once its lease ran out", func() bool {
		took = claimSOPs(t, b, lease)
		return len(took) > 0
	})
	if !slices.Equal(took, []string{"1.2.3.2"}) {
		t.Fatalf("hub B took over %v, want only the undelivered 1.2.3.2", took)
	}
	if got := claimSOPs(t, a, lease); len(got) != 0 {
		t.Fatalf("hub A claimed %v back while hub B holds it", got)
	}
	// Hub A comes back and records the outcome it had lost track of: ignored.
	if _, err := a.RecordDeliveries(bg, []hubstate.DeliveryOutcome{{SOPInstanceUID: "1.2.3.2", At: time.Now(), Err: "late"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RecordDeliveries(bg, []hubstate.DeliveryOutcome{{SOPInstanceUID: "1.2.3.2", At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	for _, sop := range []string{"1.2.3.1", "1.2.3.2"} {
		inst, err := b.Instance(bg, sop)
		if err != nil || inst.DeliveredAt.IsZero() || inst.Attempts != 1 || inst.LastError != "" {
			t.Fatalf("instance %s after the take-over: %+v, %v; want delivered in one attempt", sop, inst, err)
		}
	}
	if _, pending := dueSOPs(t, a); pending != 0 {
		t.Fatalf("%d deliveries still owed", pending)
	}
}

// TestClaimsSplitBetweenHubs: four hubs (two on each of two connection pools)
// claiming at the same moment take disjoint deliveries (SKIP LOCKED), none twice and
// none left out.
func TestClaimsSplitBetweenHubs(t *testing.T) {
	plain, other := openTwo(t, databases(t)(t))
	var hubs []*Store
	for i, s := range []*Store{plain, other, plain, other} {
		hubs = append(hubs, s.InArchive(sharedArchive).ClaimingAs(fmt.Sprint("hub-", i)))
	}
	const n = 40
	for i := range n {
		archived(t, hubs[i%2], fmt.Sprint("u", i), fmt.Sprint("1.2.3.", i+1))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, h := range hubs {
		wg.Go(func() {
			for {
				due, _, err := h.ClaimDeliveries(bg, time.Now(), time.Minute, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(due) == 0 {
					return
				}
				var out []hubstate.DeliveryOutcome
				mu.Lock()
				for _, d := range due {
					seen[d.SOPInstanceUID]++
					out = append(out, hubstate.DeliveryOutcome{SOPInstanceUID: d.SOPInstanceUID, At: time.Now()})
				}
				mu.Unlock()
				if _, err := h.RecordDeliveries(bg, out); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d of %d deliveries were claimed", len(seen), n)
	}
	for sop, k := range seen {
		if k != 1 {
			t.Errorf("delivery of %s claimed %d times", sop, k)
		}
	}
}
