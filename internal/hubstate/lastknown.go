package hubstate

import (
	"context"
	"errors"
	"sync"
	"time"
)

// LastKnown is a Registry that remembers the last answer it read for each device, and
// gives that answer when the registry beneath fails (the shared database does not
// answer) instead of the failure. A hub on a shared state uses it so that boxes it
// already knew stay admitted, and revoked ones refused, while PostgreSQL is away:
// the live streams of an ambulance on its way matter more than the few seconds by
// which a revocation made elsewhere may be missed (the hub reads the whole registry
// every few seconds through Devices, so what it remembers is at most that old when
// the database goes).
//
// Refusals are never remembered past the registry's own answer: a device it reports
// unknown is forgotten, and every write passes through.
type LastKnown struct {
	Registry
	timeout time.Duration

	mu    sync.Mutex
	known map[string]Device
}

// NewLastKnown wraps r. A Device lookup that r has not answered within timeout is
// given up and answered from memory, so that a database that is unreachable without
// refusing connections delays a box's request by timeout at most.
func NewLastKnown(r Registry, timeout time.Duration) *LastKnown {
	return &LastKnown{Registry: r, timeout: timeout, known: map[string]Device{}}
}

// Device implements Registry: r's answer when it gives one, else the last one it gave.
func (l *LastKnown) Device(ctx context.Context, id string) (Device, error) {
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	d, err := l.Registry.Device(cctx, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.known[id] = d
		return d, nil
	case errors.Is(err, ErrNotFound):
		delete(l.known, id)
		return d, err
	case ctx.Err() != nil:
		return d, err // the caller gave up, not the registry
	}
	if last, ok := l.known[id]; ok {
		return last, nil
	}
	return d, err
}

// Devices implements Registry and remembers every device it lists, forgetting those
// no longer listed.
func (l *LastKnown) Devices(ctx context.Context) ([]Device, error) {
	devs, err := l.Registry.Devices(ctx)
	if err != nil {
		return nil, err
	}
	known := make(map[string]Device, len(devs))
	for _, d := range devs {
		known[d.ID] = d
	}
	l.mu.Lock()
	l.known = known
	l.mu.Unlock()
	return devs, nil
}

// RevokeDevice implements Registry; a revocation made through this hub is remembered
// at once.
func (l *LastKnown) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	if err := l.Registry.RevokeDevice(ctx, id, at); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if d, ok := l.known[id]; ok {
		d.State, d.RevokedAt = StateRevoked, at
		l.known[id] = d
	}
	return nil
}
