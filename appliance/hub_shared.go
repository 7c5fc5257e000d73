package appliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"lifeline/internal/audit"
	"lifeline/internal/hubstate"
	"lifeline/internal/service"
	"lifeline/internal/trust"
)

// Several hubs on one shared state (docs/multi-hub.md). A hub whose state is shared
// (the Store is also a hubstate.Shared):
//   - refuses to start with a certificate authority other than the one the state's
//     other hubs use, since a box enrolled at one must be trusted by every other;
//   - writes its audit trail to the shared table as well as to its file;
//   - watches the shared state: /api/v1/status and /healthz say whether it answers,
//     and the hub is degraded while it does not;
//   - ends the live session of a box revoked at any hub, which carries media without
//     further requests and so would not meet the refusal at its next request.

// sharedCheckEvery is how often the hub asks whether the shared state answers, and
// looks for revocations made at other hubs; sharedCheckTimeout bounds one check.
const (
	sharedCheckEvery   = 2 * time.Second
	sharedCheckTimeout = 2 * time.Second
)

// authorityFingerprint is the hex SHA-256 of the authority's certificate, which the
// hubs on one shared state must have in common.
func authorityFingerprint(auth *trust.Authority) string {
	sum := sha256.Sum256(auth.Certificate().Raw)
	return hex.EncodeToString(sum[:])
}

// joinShared makes a hub, or an administration command, one of the hubs on a shared
// state: its authority and its viewer-token key must be theirs, and its audit lines
// go to the shared trail as well. A store that is not shared is left as it is.
func joinShared(store hubstate.Store, auth *trust.Authority, au *audit.Log, dataDir string) error {
	shared, ok := store.(hubstate.Shared)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateConnectTimeout)
	defer cancel()
	if err := shared.AdoptAuthority(ctx, authorityFingerprint(auth)); err != nil {
		return fmt.Errorf("state.postgres: %w", err)
	}
	if err := adoptViewerKey(ctx, shared, dataDir); err != nil { // hub_viewer_token.go
		return fmt.Errorf("state.postgres: %w", err)
	}
	au.AlsoTo(shared, audit.TableConfig{})
	return nil
}

// deviceLookupTimeout bounds how long a box's request waits for the shared state to
// say whether the box may connect, before the last known answer is taken.
const deviceLookupTimeout = 3 * time.Second

// hubRegistry is the registry the hub admits boxes by: on a shared state, one that
// answers from the last known state of each device while the database is away
// (hubstate.LastKnown), so that boxes keep streaming to a hub that lost PostgreSQL.
func hubRegistry(store hubstate.Store) hubstate.Registry {
	if _, ok := store.(hubstate.Shared); !ok {
		return store
	}
	return hubstate.NewLastKnown(store, deviceLookupTimeout)
}

// sharedWatch is what the hub last learned about its shared state.
type sharedWatch struct {
	shared hubstate.Shared

	mu     sync.Mutex
	ok     bool
	since  time.Time // when it last became reachable or unreachable
	err    error
	ending map[string]bool // revoked devices whose live session was already ended
}

// addSharedWatch adds the service that watches the shared state, when there is one.
func (h *Hub) addSharedWatch() {
	shared, ok := h.state.(hubstate.Shared)
	if !ok {
		return
	}
	h.shared = &sharedWatch{shared: shared, ok: true, since: time.Now(), ending: map[string]bool{}}
	h.sup.Add(service.Service{Name: "shared-state", Run: func(ctx context.Context, health *service.Health) error {
		for {
			h.checkShared(ctx, health)
			if !service.Sleep(ctx, sharedCheckEvery) {
				return nil
			}
		}
	}})
}

// checkShared asks once whether the shared state answers, says so in the service's
// health and audits each change, marks the live sessions this hub holds, and ends
// those of devices revoked since.
func (h *Hub) checkShared(ctx context.Context, health *service.Health) {
	w := h.shared
	cctx, cancel := context.WithTimeout(ctx, sharedCheckTimeout)
	defer cancel()
	err := w.shared.Ping(cctx)
	var devices []hubstate.Device
	if err == nil {
		// Through the hub's registry, which remembers what it lists (hubRegistry).
		devices, err = h.devices.Devices(cctx)
	}
	if err == nil {
		err = h.markLive(cctx, w.shared) // hub_board_shared.go
	}
	if ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	changed := (err == nil) != w.ok
	if changed {
		w.ok, w.since = err == nil, time.Now()
	}
	w.err = err
	w.mu.Unlock()
	if err != nil {
		health.Degraded("the shared state "+w.shared.Where()+" does not answer: boxes are admitted by their last known state; enrolment, uploads, sign-ins and commands wait for it", err)
		if changed {
			h.log.Error("shared state unreachable; the hub is degraded", "state", w.shared.Where(), "err", err)
			h.audit.Audit("hub.shared_state_lost", map[string]any{"state": w.shared.Where(), "reason": err.Error()})
		}
		return
	}
	health.Ready("the shared state " + w.shared.Where() + " answers")
	if changed {
		h.audit.TableAnswers()
		h.log.Info("shared state reachable again", "state", w.shared.Where())
		h.audit.Audit("hub.shared_state_back", map[string]any{"state": w.shared.Where()})
	}
	h.endRevokedSessions(devices)
}

// endRevokedSessions ends the live session of each revoked device this hub holds,
// once per device.
func (h *Hub) endRevokedSessions(devices []hubstate.Device) {
	if h.fanout == nil {
		return
	}
	for _, d := range devices {
		if d.State != hubstate.StateRevoked || h.shared.ending[d.ID] {
			continue
		}
		h.shared.ending[d.ID] = true
		if h.fanout.Revoke(d.ID) {
			h.audit.Audit("stream.revoked", map[string]any{"device": d.ID, "reason": "revoked at another hub or by a command on the shared state"})
		}
	}
}

// sharedNote is the line /healthz adds about the shared state, empty for a hub that
// runs alone.
func (h *Hub) sharedNote() []string {
	w := h.shared
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ok {
		return []string{"shared state: reachable (" + w.shared.Where() + ")"}
	}
	return []string{fmt.Sprintf("shared state: UNREACHABLE since %s (%s): %v; this hub is degraded",
		w.since.UTC().Format(time.RFC3339), w.shared.Where(), w.err)}
}
