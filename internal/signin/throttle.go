package signin

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// throttle slows down password guessing for one kind of key (an account, or an
// address). A key may fail free times; every failure after that blocks it for
// twice as long as the one before, from base up to ceiling. A key that has not failed
// for forget is forgotten. The table holds at most size keys, so that a stranger with
// many addresses cannot grow it without bound: when it is full, the key that failed
// longest ago makes room.
type throttle struct {
	free          int
	base, ceiling time.Duration
	forget        time.Duration
	size          int

	mu   sync.Mutex
	keys map[string]*strikes
}

type strikes struct {
	fails int
	last  time.Time // the latest failure
	until time.Time // blocked until then
}

func newThrottle(free int, base, ceiling, forget time.Duration, size int) *throttle {
	return &throttle{free: free, base: base, ceiling: ceiling, forget: forget, size: size, keys: make(map[string]*strikes)}
}

// blocked tells how long key must still wait at now; zero means it may try.
func (t *throttle) blocked(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.keys[key]
	if s == nil || !now.Before(s.until) {
		return 0
	}
	return s.until.Sub(now)
}

// fail counts a failure of key at now and returns how long key is now blocked.
func (t *throttle) fail(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.keys[key]
	if s != nil && now.Sub(s.last) > t.forget {
		s = nil
	}
	if s == nil {
		t.makeRoom(now)
		s = &strikes{}
		t.keys[key] = s
	}
	s.fails++
	s.last = now
	if over := s.fails - t.free; over > 0 {
		wait := t.ceiling
		if over < 32 && t.base<<(over-1) < t.ceiling {
			wait = t.base << (over - 1)
		}
		s.until = now.Add(wait)
		return wait
	}
	return 0
}

// succeed forgets key's failures.
func (t *throttle) succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, key)
}

// makeRoom drops forgotten keys when the table is full, and the key that failed
// longest ago if that was not enough. The scan is linear, but only a new key that
// finds the table full pays for it.
func (t *throttle) makeRoom(now time.Time) {
	if len(t.keys) < t.size {
		return
	}
	var oldest string
	var oldestAt time.Time
	for k, s := range t.keys {
		if now.Sub(s.last) > t.forget && !now.Before(s.until) {
			delete(t.keys, k)
			continue
		}
		if oldest == "" || s.last.Before(oldestAt) {
			oldest, oldestAt = k, s.last
		}
	}
	if len(t.keys) >= t.size {
		delete(t.keys, oldest)
	}
}

// addressKey is the throttle key of a client address: the IPv4 address, or the /64
// an IPv6 address is in, since one subscriber gets a whole /64 and could otherwise
// try from each of its addresses in turn.
func addressKey(remoteAddr string) string {
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
