// Package throttle slows down whoever keeps failing: a key (a client address, an
// account) may fail a few times for free, and then waits twice as long after every
// further failure. It runs on the hub, in front of what strangers can reach without a
// credential: enrolment and sign-in.
package throttle

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Policy says how a Table treats failures. The zero value of a field means its
// default.
type Policy struct {
	// Free is how many failures a key may have before it must wait (default 10).
	Free int
	// Base is the first wait; each further failure doubles it up to Ceiling
	// (defaults 1 s and 15 min).
	Base, Ceiling time.Duration
	// Forget drops a key that has not failed for this long (default 1 h).
	Forget time.Duration
	// Size bounds the keys held, so that a stranger with many addresses cannot grow
	// the table without bound: when it is full, the key that failed longest ago
	// makes room (default 4096, each well under 100 bytes).
	Size int
}

func (p *Policy) populate() {
	if p.Free <= 0 {
		p.Free = 10
	}
	if p.Base <= 0 {
		p.Base = time.Second
	}
	if p.Ceiling <= 0 {
		p.Ceiling = 15 * time.Minute
	}
	if p.Forget <= 0 {
		p.Forget = time.Hour
	}
	if p.Size <= 0 {
		p.Size = 4096
	}
}

// Table holds the failures of keys. It is safe for concurrent use.
type Table struct {
	p    Policy
	mu   sync.Mutex
	keys map[string]*strikes
}

type strikes struct {
	fails int
	last  time.Time // the latest failure
	until time.Time // blocked until then
}

// New returns an empty table with p's defaults filled in.
func New(p Policy) *Table {
	p.populate()
	return &Table{p: p, keys: make(map[string]*strikes)}
}

// Blocked tells how long key must still wait at now; zero means it may try.
func (t *Table) Blocked(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.keys[key]
	if s == nil || !now.Before(s.until) {
		return 0
	}
	return s.until.Sub(now)
}

// Fail counts a failure of key at now and returns how long key is now blocked.
func (t *Table) Fail(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.keys[key]
	if s != nil && now.Sub(s.last) > t.p.Forget {
		s = nil
	}
	if s == nil {
		t.makeRoom(now)
		s = &strikes{}
		t.keys[key] = s
	}
	s.fails++
	s.last = now
	over := s.fails - t.p.Free
	if over <= 0 {
		return 0
	}
	wait := t.p.Ceiling
	if over < 32 && t.p.Base<<(over-1) < t.p.Ceiling {
		wait = t.p.Base << (over - 1)
	}
	s.until = now.Add(wait)
	return wait
}

// Succeed forgets key's failures.
func (t *Table) Succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, key)
}

// Len is how many keys the table holds.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}

// makeRoom drops forgotten keys when the table is full, and the key that failed
// longest ago if that was not enough. The scan is linear, but only a new key that
// finds the table full pays for it.
func (t *Table) makeRoom(now time.Time) {
	if len(t.keys) < t.p.Size {
		return
	}
	var oldest string
	var oldestAt time.Time
	for k, s := range t.keys {
		if now.Sub(s.last) > t.p.Forget && !now.Before(s.until) {
			delete(t.keys, k)
			continue
		}
		if oldest == "" || s.last.Before(oldestAt) {
			oldest, oldestAt = k, s.last
		}
	}
	if len(t.keys) >= t.p.Size {
		delete(t.keys, oldest)
	}
}

// AddressKey is the key of a client address ("host:port" as http.Request.RemoteAddr
// has it): the IPv4 address, or the /64 an IPv6 address is in, since one subscriber
// gets a whole /64 and could otherwise try from each of its addresses in turn.
func AddressKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
