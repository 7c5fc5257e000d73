package dimse

import (
	"net/netip"
	"time"
)

// refusedDisplaced labels an association ended to make room for a new one: it was
// storing nothing, and had stored nothing for DisplaceIdleAfter.
const refusedDisplaced = "idle_association_displaced"

// assocSlot is one association's place in the gate.
type assocSlot struct {
	callingAE string
	addr      netip.Addr
	since     time.Time // the last instance stored, or the start
	storing   bool      // receiving an instance now: never displaced
	displaced bool
	released  bool
	stop      func() // ends the association after the message in progress; nil until it runs
}

// associate admits an association of callingAE from addr, or returns why not. When
// every place is taken, the association that has stored nothing for longest (and for
// at least displaceIdle) is displaced: victim is returned for the caller to stop, and
// the newcomer is admitted at once, beyond the limit until the victim has gone (never
// beyond twice the limit). A modality that comes to send a study so gets in even when
// keep-alive squatters from several addresses and AE titles hold every place.
func (g *gate) associate(callingAE string, addr netip.Addr, now time.Time) (a *assocSlot, why string, victim *assocSlot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	// The calling AE's own limit is checked first: it names the sender who is over,
	// and a sender over its own limit displaces nobody.
	if g.byAE[callingAE] >= g.maxPerAE {
		return nil, refusedCallingAE, nil
	}
	if g.live() >= g.maxAssocs {
		victim = g.idlestLocked(now)
		if victim == nil || len(g.assocs) >= 2*g.maxAssocs {
			return nil, refusedAssociations, nil
		}
		victim.displaced = true
	}
	a = &assocSlot{callingAE: callingAE, addr: addr, since: now}
	g.assocs[a] = struct{}{}
	g.byAE[callingAE]++
	return a, "", victim
}

// live counts the associations that hold a place: not released, not displaced.
func (g *gate) live() int {
	n := 0
	for a := range g.assocs {
		if !a.displaced {
			n++
		}
	}
	return n
}

func (g *gate) idlestLocked(now time.Time) *assocSlot {
	var idlest *assocSlot
	for a := range g.assocs {
		if a.displaced || a.storing || a.stop == nil || now.Sub(a.since) < g.displaceIdle {
			continue
		}
		if idlest == nil || a.since.Before(idlest.since) {
			idlest = a
		}
	}
	return idlest
}

// running records how to stop a, once its association runs.
func (g *gate) running(a *assocSlot, stop func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a.stop = stop
}

// working records that a begins (true) or ends (false) receiving an instance.
func (g *gate) working(a *assocSlot, storing bool, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a.storing = storing
	a.since = now
}

// release gives back a's place; only the first call counts.
func (g *gate) release(a *assocSlot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a.released {
		return
	}
	a.released = true
	delete(g.assocs, a)
	if g.byAE[a.callingAE]--; g.byAE[a.callingAE] <= 0 {
		delete(g.byAE, a.callingAE)
	}
}
