package transfer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"lifeline/internal/hostaddr"
)

// errConnReplaced marks a request cut because the box gave up its connection's path
// (no acknowledgement for several round trips, or a new local address) and dialled a
// new one: the request is sent again at once, with no back-off, and resumes from the
// hub's offset.
var errConnReplaced = errors.New("transfer: connection replaced after its path was lost")

// codeReplaced is the QUIC application error code with which a lost path's
// connection is closed (H3_NO_ERROR: nothing went wrong at the HTTP layer).
const codeReplaced = quic.ApplicationErrorCode(http3.ErrCodeNoError)

// Pacing of dials. While the hub cannot be reached the pool tries again every
// probeEvery (a QUIC Initial, about 1.2 kB, is cheap), so that the first connection
// after an outage is made within probeEvery of the link's return; after probeFor of
// failures it slows to probeSlow, as a hub that is down for long is not worth a
// handshake four times a second.
const (
	probeEvery = 150 * time.Millisecond
	probeFor   = 30 * time.Second
	probeSlow  = 2 * time.Second
	maxDialing = 4
	watchTick  = 100 * time.Millisecond
	// minStall is the shortest silence after which a connection with data
	// outstanding counts as cut off; a connection's own stall time is three
	// probe timeouts (RFC 9002) of its measured path, if longer.
	minStall = 1500 * time.Millisecond
	maxStall = 5 * time.Second
)

// connPool holds several QUIC connections to the hub and spreads requests over them,
// so that one lost packet halves one connection's congestion window, not the whole
// transfer. It watches each connection: one whose path stopped answering (packets
// sent, nothing received for a few round trips) or whose local address is gone is
// retired, and a new one is dialled at once instead of waiting for QUIC's path
// validation; requests still on the retired one are cut (errConnReplaced) once the
// new one is up.
type connPool struct {
	tls    *tls.Config
	quic   *quic.Config
	h3     *http3.Transport
	size   int
	dialTO time.Duration

	mu sync.Mutex
	// addr is the hub the connections go to (host:port): that of the latest
	// request, as the box's route gave it.
	addr      string
	conns     []*poolConn
	retired   []*poolConn
	dialing   int
	lastDial  time.Time
	failing   time.Time // first failed dial since the last success; zero: none
	lastErr   error
	demand    time.Time // last request; dials are made only while there is demand
	changed   chan struct{}
	gen       uint64 // counts rest calls
	localAddr uint64
	closed    bool

	up     chan struct{} // a connection was made after a failure or a retirement
	dialed func(addr string, start time.Time, err error)
	stop   chan struct{}
	wg     sync.WaitGroup
}

type poolConn struct {
	qc       *quic.Conn
	hc       *http3.ClientConn
	inflight atomic.Int32
	retired  atomic.Bool
	// retiredRecv is PacketsReceived when it was retired: a retired connection that
	// hears from the hub again was only slow, and its requests are left to finish.
	retiredRecv uint64
	// watch state, used by the watch goroutine only
	recv, sentAtRecv uint64
	sendSince        time.Time // first send seen with nothing received since
}

// newConnPool makes a pool of size connections. up is signalled when a connection
// was made after a failure or a retirement; dialed, if not nil, hears of every dial.
func newConnPool(tlsConf *tls.Config, qconf *quic.Config, size int, dialTimeout time.Duration,
	up chan struct{}, dialed func(addr string, start time.Time, err error)) *connPool {
	tlsConf = tlsConf.Clone()
	tlsConf.NextProtos = []string{http3.NextProtoH3}
	if dialed == nil {
		dialed = func(string, time.Time, error) {}
	}
	p := &connPool{tls: tlsConf, quic: qconf, h3: &http3.Transport{}, size: size, dialTO: dialTimeout,
		changed: make(chan struct{}), up: up, dialed: dialed, stop: make(chan struct{})}
	p.localAddr = hostaddr.Fingerprint()
	p.wg.Go(p.watch)
	return p
}

// RoundTrip sends req on the least busy live connection, dialling when needed.
func (p *connPool) RoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "443")
	}
	pc, err := p.get(req.Context(), addr)
	if err != nil {
		return nil, err
	}
	pc.inflight.Add(1)
	resp, err := pc.hc.RoundTrip(req)
	if err != nil {
		pc.inflight.Add(-1)
		if pc.retired.Load() {
			err = fmt.Errorf("%w: %w", errConnReplaced, err)
		}
		return nil, err
	}
	resp.Body = &doneBody{ReadCloser: resp.Body, done: func() { pc.inflight.Add(-1) }}
	return resp, nil
}

// doneBody calls done once, when the response body is closed.
type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// get returns a live connection to addr, waiting for a dial when there is none. A
// dial that fails while the caller waits is its answer, so that the forwarder sees
// the hub as unreachable. A caller still waiting when the pool moved to another hub
// or was put to rest is told to go again at once (errConnReplaced): its request is
// made afresh for the hub and transport in use.
func (p *connPool) get(ctx context.Context, addr string) (*poolConn, error) {
	var since time.Time
	var gen uint64
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errors.New("transfer: connection pool closed")
		}
		if since.IsZero() {
			gen = p.gen
		}
		if !since.IsZero() && (addr != p.addr || gen != p.gen) {
			p.mu.Unlock()
			return nil, fmt.Errorf("%w: the box moved to another hub or transport", errConnReplaced)
		}
		if addr != p.addr {
			p.moveLocked(addr)
		}
		p.demand = time.Now()
		p.pruneLocked()
		if len(p.conns) < p.size {
			p.dialLocked(false)
		}
		if len(p.conns) > 0 {
			best := p.conns[0]
			for _, pc := range p.conns[1:] {
				if pc.inflight.Load() < best.inflight.Load() {
					best = pc
				}
			}
			p.mu.Unlock()
			return best, nil
		}
		if since.IsZero() {
			since = time.Now()
		} else if p.lastErr != nil && p.failing.After(since) {
			err := p.lastErr
			p.mu.Unlock()
			return nil, err
		}
		ch := p.changed
		p.mu.Unlock()
		t := time.NewTimer(probeEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// moveLocked points the pool at another hub: the connections to the old one are
// retired (requests on them finish if it still answers) and nothing of its failures
// counts against the new one.
func (p *connPool) moveLocked(addr string) {
	for _, pc := range slices.Clone(p.conns) {
		p.retireLocked(pc)
	}
	p.addr = addr
	p.failing, p.lastErr = time.Time{}, nil
	p.signalLocked()
}

// rest stops the dials made for demand until the next request: the box sends over
// another transport.
func (p *connPool) rest() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.demand = time.Time{}
	p.gen++
	p.signalLocked()
}

// kick dials one connection now, if none is being dialled, to see whether QUIC
// works.
func (p *connPool) kick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.addr != "" && p.dialing == 0 {
		p.dialLocked(true)
	}
}

// pruneLocked forgets connections that ended (idle timeout, closed by the hub).
func (p *connPool) pruneLocked() {
	p.conns = slices.DeleteFunc(p.conns, func(pc *poolConn) bool { return pc.qc.Context().Err() != nil })
	p.retired = slices.DeleteFunc(p.retired, func(pc *poolConn) bool { return pc.qc.Context().Err() != nil })
}

// dialLocked starts a dial unless one started less than the pacing interval ago (now
// overrides the pacing, for a path just found lost).
func (p *connPool) dialLocked(now bool) {
	pace := time.Duration(0)
	switch {
	case p.dialing > 0 && !now:
		pace = probeEvery
	case !p.failing.IsZero() && time.Since(p.failing) > probeFor:
		pace = probeSlow
	case !p.failing.IsZero():
		pace = probeEvery
	}
	if p.closed || p.addr == "" || p.dialing >= maxDialing || time.Since(p.lastDial) < pace {
		return
	}
	p.dialing++
	p.lastDial = time.Now()
	addr := p.addr
	p.wg.Go(func() {
		start := time.Now()
		err := p.dial(addr)
		p.dialed(addr, start, err)
	})
}

func (p *connPool) dial(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.dialTO)
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	tlsConf := p.tls
	if host, _, err := net.SplitHostPort(addr); err == nil && tlsConf.ServerName == "" {
		tlsConf = tlsConf.Clone()
		tlsConf.ServerName = host
	}
	qc, err := quic.DialAddr(ctx, addr, tlsConf, p.quic)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing--
	if err != nil {
		if addr != p.addr {
			return err // the pool moved on to another hub meanwhile
		}
		if p.failing.IsZero() {
			p.failing = time.Now()
		}
		p.lastErr = err
		p.signalLocked()
		return err
	}
	if p.closed || len(p.conns) >= p.size || addr != p.addr {
		qc.CloseWithError(0, "")
		return nil
	}
	pc := &poolConn{qc: qc, hc: p.h3.NewClientConn(qc)}
	p.conns = append(p.conns, pc)
	recovered := !p.failing.IsZero() || len(p.retired) > 0
	p.failing, p.lastErr = time.Time{}, nil
	// The new path works: requests stuck on lost paths go again on it. One that
	// has heard from the hub since it was retired was only slow (a loaded machine, a
	// queue on the link): its requests finish where they are.
	p.retired = slices.DeleteFunc(p.retired, func(old *poolConn) bool {
		if old.qc.ConnectionStats().PacketsReceived != old.retiredRecv {
			return false
		}
		old.qc.CloseWithError(codeReplaced, "path lost; replaced by a new connection")
		return true
	})
	p.signalLocked()
	if recovered {
		select {
		case p.up <- struct{}{}:
		default:
		}
	}
	return nil
}

func (p *connPool) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// watch retires connections whose path is lost and keeps dialling while requests
// want a connection.
func (p *connPool) watch() {
	t := time.NewTicker(watchTick)
	defer t.Stop()
	lastAddrCheck := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		moved := false
		if now.Sub(lastAddrCheck) >= 5*watchTick {
			lastAddrCheck = now
			if a := hostaddr.Fingerprint(); a != p.localAddr {
				moved = p.localAddr != 0
				p.localAddr = a
			}
		}
		p.mu.Lock()
		p.pruneLocked()
		lost := false
		for _, pc := range slices.Clone(p.conns) {
			if moved || pc.stalled(now) {
				p.retireLocked(pc)
				lost = true
			}
		}
		for _, pc := range p.retired {
			if pc.inflight.Load() == 0 {
				pc.qc.CloseWithError(codeReplaced, "path lost")
			}
		}
		if lost {
			p.dialLocked(true)
		} else if len(p.conns) < p.size && time.Since(p.demand) < time.Minute && (len(p.conns) == 0 || !p.failing.IsZero()) {
			p.dialLocked(false)
		}
		p.mu.Unlock()
	}
}

func (p *connPool) retireLocked(pc *poolConn) {
	pc.retired.Store(true)
	pc.retiredRecv = pc.qc.ConnectionStats().PacketsReceived
	p.conns = slices.DeleteFunc(p.conns, func(x *poolConn) bool { return x == pc })
	p.retired = append(p.retired, pc)
	if p.failing.IsZero() {
		p.failing = time.Now()
	}
}

// stalled reports whether the connection sent packets and has heard nothing back for
// longer than its path could take to answer.
func (pc *poolConn) stalled(now time.Time) bool {
	st := pc.qc.ConnectionStats()
	if st.PacketsReceived != pc.recv {
		pc.recv, pc.sentAtRecv, pc.sendSince = st.PacketsReceived, st.PacketsSent, time.Time{}
		return false
	}
	if st.PacketsSent == pc.sentAtRecv {
		return false
	}
	if pc.sendSince.IsZero() {
		pc.sendSince = now
		return false
	}
	limit := min(max(3*(st.SmoothedRTT+4*st.MeanDeviation+25*time.Millisecond), minStall), maxStall)
	return now.Sub(pc.sendSince) > limit
}

// retireAll gives up every connection, as when the box's address changed: requests
// in flight go on until a new connection is up.
func (p *connPool) retireAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range slices.Clone(p.conns) {
		p.retireLocked(pc)
	}
	p.dialLocked(true)
}

// count returns the live connections.
func (p *connPool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruneLocked()
	return len(p.conns)
}

func (p *connPool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.stop)
	all := append(slices.Clone(p.conns), p.retired...)
	p.conns, p.retired = nil, nil
	p.mu.Unlock()
	for _, pc := range all {
		pc.qc.CloseWithError(0, "")
	}
	p.wg.Wait()
}
