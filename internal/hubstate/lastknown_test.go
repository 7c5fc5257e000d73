package hubstate_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/internal/hubstate"
	"lifeline/internal/hubstate/boltstate"
)

// downRegistry fails every lookup while down, as a shared database that went away;
// while hang is set it does not answer until its caller gives up.
type downRegistry struct {
	hubstate.Registry
	down, hang atomic.Bool
}

var errGone = errors.New("connection refused")

func (r *downRegistry) Device(ctx context.Context, id string) (hubstate.Device, error) {
	if r.hang.Load() {
		<-ctx.Done()
		return hubstate.Device{}, ctx.Err()
	}
	if r.down.Load() {
		return hubstate.Device{}, errGone
	}
	return r.Registry.Device(ctx, id)
}

func (r *downRegistry) Devices(ctx context.Context) ([]hubstate.Device, error) {
	if r.down.Load() {
		return nil, errGone
	}
	return r.Registry.Devices(ctx)
}

// TestLastKnownAnswersWhileTheRegistryIsAway: devices read before the registry went
// away keep their state (active admitted, revoked refused) while it is away, also
// when it hangs; a device never read gets the failure; an unknown device is not
// remembered; a revocation made through it is remembered at once.
func TestLastKnownAnswersWhileTheRegistryIsAway(t *testing.T) {
	ctx := context.Background()
	store, err := boltstate.Open(filepath.Join(t.TempDir(), "hub.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, id := range []string{"AMB-1", "AMB-2", "AMB-3", "AMB-4"} {
		if err := store.IssueCode(ctx, hubstate.EnrolmentCode{Hash: "h" + id, Device: id, Expires: at.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.RedeemCode(ctx, "h"+id, at, func(string) (hubstate.Certificate, error) {
			return hubstate.Certificate{Serial: "s" + id, NotAfter: at.AddDate(1, 0, 0)}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.RevokeDevice(ctx, "AMB-2", at); err != nil {
		t.Fatal(err)
	}
	reg := &downRegistry{Registry: store}
	lk := hubstate.NewLastKnown(reg, 200*time.Millisecond)
	for _, id := range []string{"AMB-1", "AMB-2", "AMB-4"} {
		if _, err := lk.Device(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := lk.Device(ctx, "AMB-9"); !errors.Is(err, hubstate.ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	if err := lk.RevokeDevice(ctx, "AMB-4", at); err != nil {
		t.Fatal(err)
	}

	reg.down.Store(true)
	for id, want := range map[string]string{"AMB-1": hubstate.StateActive, "AMB-2": hubstate.StateRevoked, "AMB-4": hubstate.StateRevoked} {
		if d, err := lk.Device(ctx, id); err != nil || d.State != want {
			t.Errorf("%s while the registry is away: %+v, %v; want %s as last read", id, d, err, want)
		}
	}
	for _, id := range []string{"AMB-3", "AMB-9"} {
		if _, err := lk.Device(ctx, id); !errors.Is(err, errGone) {
			t.Errorf("%s, never read, while the registry is away: %v, want its failure", id, err)
		}
	}
	if _, err := lk.Devices(ctx); !errors.Is(err, errGone) {
		t.Fatalf("Devices while away: %v", err)
	}

	reg.down.Store(false)
	reg.hang.Store(true)
	began := time.Now()
	if d, err := lk.Device(ctx, "AMB-1"); err != nil || d.State != hubstate.StateActive {
		t.Fatalf("AMB-1 while the registry hangs: %+v, %v", d, err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("a hanging registry held the lookup %v", took)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := lk.Device(gone, "AMB-1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a caller that gave up: %v, want its own cancellation, not a remembered answer", err)
	}

	// A full listing replaces what is remembered: AMB-3 is known from then on.
	reg.hang.Store(false)
	if _, err := lk.Devices(ctx); err != nil {
		t.Fatal(err)
	}
	reg.down.Store(true)
	if d, err := lk.Device(ctx, "AMB-3"); err != nil || d.State != hubstate.StateActive {
		t.Fatalf("AMB-3 after a listing, registry away: %+v, %v", d, err)
	}
}
