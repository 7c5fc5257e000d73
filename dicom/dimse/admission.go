package dimse

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Reasons a connection or an association is refused, as the metrics label them.
const (
	refusedNotAllowed   = "address_not_allowed"
	refusedConnections  = "connection_limit"
	refusedAddressLimit = "address_limit"
	refusedAssociations = "association_limit"
	refusedCallingAE    = "calling_ae_limit"
)

// refusedEvicted labels a connection closed to make room: it had not delivered its
// A-ASSOCIATE-RQ and was the oldest such when the connection cap was reached.
const refusedEvicted = "evicted_before_association"

// gate counts what is open on the DICOM port, so that admission is decided before a
// connection costs more than its accept: connections in total and per remote address
// (associated or not, so this also bounds associations per address), and associations
// in total and per calling AE title.
//
// At the connection cap, a newcomer takes the place of the oldest connection that has
// not yet delivered its A-ASSOCIATE-RQ. A modality sends its request within
// milliseconds of connecting; connections that sit silent (a slow-loris flood) cannot
// keep it out unless they arrive faster than it can speak. Connections that have
// spoken are never displaced: they are refused a newcomer's sake only by the limits.
type gate struct {
	maxConns, maxPerAddr int
	maxAssocs, maxPerAE  int

	displaceIdle time.Duration // see SCPConfig.DisplaceIdleAfter

	mu      sync.Mutex
	conns   int
	byAddr  map[netip.Addr]int
	pending map[*slot]struct{} // admitted, not yet spoken, not evicted
	seq     uint64
	assocs  map[*assocSlot]struct{}
	byAE    map[string]int
}

// slot is one admitted connection's place in the gate.
type slot struct {
	addr    netip.Addr
	nc      net.Conn // the transport, closed to evict
	seq     uint64   // admission order
	evicted bool
	left    bool
}

func newGate(cfg *SCPConfig) *gate {
	return &gate{maxConns: cfg.MaxConnections, maxPerAddr: cfg.MaxConnectionsPerAddress,
		maxAssocs: cfg.MaxAssociations, maxPerAE: cfg.MaxAssociationsPerAE, displaceIdle: cfg.DisplaceIdleAfter,
		byAddr: map[netip.Addr]int{}, byAE: map[string]int{}, pending: map[*slot]struct{}{}, assocs: map[*assocSlot]struct{}{}}
}

// enter admits a new connection nc from addr and returns its slot, or returns why
// not. victim, when not nil, is a connection evicted to make room: the caller closes
// it. Evicted connections still count until they leave, which they do at once; the
// count may pass the cap by those alone, and never past twice the cap.
func (g *gate) enter(addr netip.Addr, nc net.Conn) (s *slot, why string, victim *slot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byAddr[addr] >= g.maxPerAddr {
		return nil, refusedAddressLimit, nil
	}
	if g.conns >= g.maxConns {
		victim = g.oldestPendingLocked()
		if victim == nil || g.conns >= 2*g.maxConns {
			return nil, refusedConnections, nil
		}
		victim.evicted = true
		delete(g.pending, victim)
	}
	g.seq++
	s = &slot{addr: addr, nc: nc, seq: g.seq}
	g.pending[s] = struct{}{}
	g.conns++
	g.byAddr[addr]++
	return s, "", victim
}

func (g *gate) oldestPendingLocked() *slot {
	var oldest *slot
	for p := range g.pending {
		if oldest == nil || p.seq < oldest.seq {
			oldest = p
		}
	}
	return oldest
}

// spoke records that s delivered its A-ASSOCIATE-RQ, which protects it from eviction.
// It returns false when s was evicted first.
func (g *gate) spoke(s *slot) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.pending, s)
	return !s.evicted
}

func (g *gate) wasEvicted(s *slot) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return s.evicted
}

// leave gives back s's place; only the first call counts.
func (g *gate) leave(s *slot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.left {
		return
	}
	s.left = true
	delete(g.pending, s)
	g.conns--
	if g.byAddr[s.addr]--; g.byAddr[s.addr] <= 0 {
		delete(g.byAddr, s.addr)
	}
}

// open returns the connections open now.
func (g *gate) open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns
}

// remoteAddr returns the IP address of a connection's peer, unmapped, so that an
// IPv4 peer on a dual-stack listener counts as itself.
func remoteAddr(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	ap, err := netip.ParseAddrPort(nc.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// allowed reports whether addr may connect at all.
func (s *SCP) allowed(addr netip.Addr) bool {
	if len(s.cfg.AllowedNetworks) == 0 {
		return true
	}
	for _, p := range s.cfg.AllowedNetworks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// maxRefusers bounds the goroutines that answer refused connections with an
// A-ASSOCIATE-RJ; beyond it a refused connection is simply closed.
const maxRefusers = 16

// refuse turns away a connection the gate did not admit, as cheaply as a flood needs:
// a modality that merely came when the box is busy gets a transient A-ASSOCIATE-RJ
// ("local limit exceeded") so that it reports the reason and retries later, sent
// without reading its request. A stranger (not allowed), a TLS peer (no handshake is
// spent on it) and anyone beyond maxRefusers refusals at once are closed at once.
func (s *SCP) refuse(nc net.Conn, addr netip.Addr, reason string) {
	s.countRefusal(reason, addr)
	quiet := reason == refusedNotAllowed || s.cfg.TLS != nil
	if !quiet && s.refusers.Add(1) > maxRefusers {
		s.refusers.Add(-1)
		quiet = true
	}
	if quiet {
		nc.Close()
		return
	}
	go func() {
		defer s.refusers.Add(-1)
		defer nc.Close()
		rj := &AssociateRJ{Result: rjTransient, Source: rjSourcePresentation, Reason: rjLocalLimitExceeded}
		nc.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := nc.Write(rj.Encode()); err != nil {
			return
		}
		if tc, ok := nc.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
		// Read what the peer sent (its request) before closing, so that the close does
		// not reset the connection and lose the rejection on its way.
		drainUpTo(nc, MaxAssociateLength+6)
	}()
}

// countRefusal counts a refusal in the metrics and the status, and logs it (rate-limited).
func (s *SCP) countRefusal(reason string, addr netip.Addr) {
	s.m.refused.WithLabelValues(reason).Inc()
	s.stats.refuse(reason)
	s.refusals.note(reason, addr)
}

func drainUpTo(nc net.Conn, n int) {
	var buf [4096]byte
	for n > 0 {
		k, err := nc.Read(buf[:min(n, len(buf))])
		n -= k
		if err != nil {
			return
		}
	}
}

// refusalLog writes refusals to the log at most once per interval and reason, with
// the count since the last line, so that a flood of connections cannot flood the log;
// the metrics count every one.
type refusalLog struct {
	log      *slog.Logger
	interval time.Duration
	limits   func(reason string) string

	mu       sync.Mutex
	byReason map[string]*refusalCount
	closed   bool // the receiver stopped: count, but log nothing more
}

type refusalCount struct {
	n       int
	last    time.Time
	addrs   map[netip.Addr]bool // a sample of addresses, for the operator
	flusher *time.Timer         // logs what was held back, once the interval is over
}

const refusalAddrSample = 5

func (r *refusalLog) note(reason string, addr netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byReason == nil {
		r.byReason = map[string]*refusalCount{}
	}
	c := r.byReason[reason]
	if c == nil {
		c = &refusalCount{addrs: map[netip.Addr]bool{}}
		r.byReason[reason] = c
	}
	c.n++
	if r.closed {
		return
	}
	if len(c.addrs) < refusalAddrSample {
		c.addrs[addr] = true
	}
	switch wait := r.interval - time.Since(c.last); {
	case wait <= 0:
		r.flushLocked(reason, c)
	case c.flusher == nil:
		c.flusher = time.AfterFunc(wait, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			c.flusher = nil
			if c.n > 0 && !r.closed {
				r.flushLocked(reason, c)
			}
		})
	}
}

// close logs what is held back and stops the timers, so that nothing is logged after
// the receiver has stopped.
func (r *refusalLog) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for reason, c := range r.byReason {
		if c.flusher != nil {
			c.flusher.Stop()
			c.flusher = nil
		}
		if c.n > 0 {
			r.flushLocked(reason, c)
		}
	}
	r.closed = true
}

func (r *refusalLog) flushLocked(reason string, c *refusalCount) {
	addrs := make([]string, 0, len(c.addrs))
	for a := range c.addrs {
		addrs = append(addrs, a.String())
	}
	r.log.Warn("DICOM connections refused", "reason", reason, "count", c.n, "limit", r.limits(reason),
		"addresses", addrs, "next_report_in", r.interval)
	c.n, c.last, c.addrs = 0, time.Now(), map[netip.Addr]bool{}
}

// burstLog lets through at most burst lines per interval and counts the rest: a flood
// of connections that fail on their own (garbage, silence, a wrong AE title, an
// association aborted at once) writes a few lines, not one per connection.
type burstLog struct {
	burst    int
	interval time.Duration

	mu      sync.Mutex
	start   time.Time
	used    int
	dropped int
}

// allow reports whether a line may be written now, and how many were dropped since
// the last one written.
func (b *burstLog) allow() (bool, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now := time.Now(); now.Sub(b.start) >= b.interval {
		b.start, b.used = now, 0
	}
	if b.used >= b.burst {
		b.dropped++
		return false, 0
	}
	b.used++
	dropped := b.dropped
	b.dropped = 0
	return true, dropped
}

// connWarn logs a warning about one connection or association, within the burst.
func (s *SCP) connWarn(log *slog.Logger, msg string, args ...any) {
	ok, dropped := s.connLog.allow()
	if !ok {
		return
	}
	if dropped > 0 {
		args = append(args, "similar_lines_dropped", dropped)
	}
	log.Warn(msg, args...)
}

// limitText names the configured limit behind a refusal reason, for the log.
func (s *SCP) limitText(reason string) string {
	switch reason {
	case refusedConnections:
		return fmt.Sprintf("%d connections", s.cfg.MaxConnections)
	case refusedAddressLimit:
		return fmt.Sprintf("%d connections per address", s.cfg.MaxConnectionsPerAddress)
	case refusedAssociations:
		return fmt.Sprintf("%d associations", s.cfg.MaxAssociations)
	case refusedCallingAE:
		return fmt.Sprintf("%d associations per calling AE title", s.cfg.MaxAssociationsPerAE)
	case refusedNotAllowed:
		return fmt.Sprintf("%d allowed networks", len(s.cfg.AllowedNetworks))
	case refusedDisplaced:
		return fmt.Sprintf("%d associations; one idle for %s makes room", s.cfg.MaxAssociations, s.cfg.DisplaceIdleAfter)
	case refusedEvicted:
		return fmt.Sprintf("%d connections; the oldest without an association request makes room", s.cfg.MaxConnections)
	}
	return reason
}
