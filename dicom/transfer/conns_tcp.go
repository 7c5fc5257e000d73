package transfer

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go/http3"
	"golang.org/x/sys/unix"
)

// The box's uploads go over QUIC when they can and over HTTPS on TCP when a network
// blocks UDP to the hub (some hospital and carrier firewalls do). The hub serves the
// same handler on both (Server), on the same port.
//
// The move to TCP needs evidence that it is UDP, not the link or the hub, that fails:
// a QUIC dial failed, a TCP and TLS handshake to the same address then worked, and
// fallbackStrikes QUIC dials begun after that handshake failed as well. A short
// outage fails the dials begun during it, but not one begun after the link is back,
// so it never moves the box to TCP. While on TCP the box tries one QUIC dial every
// quicRetry (a minute by default) and goes back to QUIC when one succeeds. A TCP
// connection that cannot be made sends the box back to QUIC's dials too, which then
// find the hub unreachable on both and move the route on.
const fallbackStrikes = 2

// tcpEvidence is how long a TCP handshake that worked counts as evidence against the
// QUIC dials begun after it.
const tcpEvidence = 10 * time.Second

// RoundTrip sends req over the transport in use.
func (c *client) RoundTrip(req *http.Request) (*http.Response, error) {
	if !c.overTCP.Load() {
		return c.pool.RoundTrip(req)
	}
	if req.Method == http3.MethodHead0RTT {
		// HTTP/3's marker for a HEAD that may go in 0-RTT; on TCP it is a HEAD.
		req = req.Clone(req.Context())
		req.Method = http.MethodHead
	}
	resp, err := c.tcp.tr.RoundTrip(req)
	var op *net.OpError
	if err != nil && errors.As(err, &op) && op.Op == "dial" && c.overTCP.CompareAndSwap(true, false) {
		c.log.Warn("transfer: HTTPS to the hub over TCP fails too; trying QUIC again", "hub", req.URL.Host, "err", err)
	}
	return resp, err
}

// transport names the transport in use, for the status.
func (c *client) transport() string {
	if c.overTCP.Load() {
		return "tcp"
	}
	return "quic"
}

// connections counts the live connections to the hub on the transport in use.
func (c *client) connections() int {
	if c.overTCP.Load() {
		return int(c.tcp.open.Load())
	}
	return c.pool.count()
}

// dialed hears of every QUIC dial the pool made to addr, begun at start.
func (c *client) dialed(addr string, start time.Time, err error) {
	fb := &c.fallback
	fb.Lock()
	if err == nil {
		fb.tcpOK, fb.strikes = time.Time{}, 0
		fb.Unlock()
		if c.overTCP.CompareAndSwap(true, false) {
			c.log.Info("transfer: QUIC to the hub works again; uploads go back to HTTP/3", "hub", addr)
			c.signal()
		}
		return
	}
	if c.overTCP.Load() {
		fb.Unlock()
		return
	}
	if !fb.tcpOK.IsZero() && time.Since(fb.tcpOK) < tcpEvidence {
		// TCP worked lately: a dial begun before that says nothing more, and one
		// begun after it is a strike against UDP.
		if !start.After(fb.tcpOK) {
			fb.Unlock()
			return
		}
		fb.strikes++
		if fb.strikes < fallbackStrikes {
			fb.Unlock()
			return
		}
		fb.tcpOK, fb.strikes = time.Time{}, 0
		fb.Unlock()
		c.overTCP.Store(true)
		c.pool.rest()
		c.log.Warn("transfer: QUIC handshakes to the hub fail where TCP works (UDP blocked?); uploads go over HTTPS on TCP, QUIC is tried again periodically",
			"hub", addr, "quic_err", err, "quic_retry", c.quicRetry)
		c.signal()
		return
	}
	if fb.probing {
		fb.Unlock()
		return
	}
	// One probe, and one report to the route, at a time: the dials of one outage
	// fail together.
	fb.probing = true
	fb.Unlock()
	defer func() {
		fb.Lock()
		fb.probing = false
		fb.Unlock()
	}()

	tcpErr := c.tcp.probe(addr)
	c.log.Debug("transfer: a QUIC dial to the hub failed; tried TCP", "hub", addr, "quic_err", err, "tcp_err", tcpErr)
	fb.Lock()
	if tcpErr == nil {
		fb.tcpOK = time.Now()
	} else {
		fb.tcpOK, fb.strikes = time.Time{}, 0
	}
	fb.Unlock()
	if tcpErr == nil {
		c.pool.kick() // a QUIC dial begun now says whether it is UDP that fails
		return
	}
	// Neither transport reaches this hub: the route may know another, unless it
	// moved on already (dials to the old hub may still be ending).
	cur := c.route.Current()
	if base, berr := hubBase(cur); berr != nil || base != "https://"+addr {
		return
	}
	c.route.Unreachable(cur)
	if now := c.route.Current(); now != cur {
		c.log.Warn("transfer: hub unreachable over QUIC and TCP; moving to the next hub address", "from", cur, "to", now, "err", err)
		c.signal()
	}
}

// retryQUIC tries a QUIC dial every quicRetry while the box uses TCP.
func (c *client) retryQUIC() {
	t := time.NewTicker(c.quicRetry)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if c.overTCP.Load() {
			c.pool.kick()
		}
	}
}

// signal tells the forwarder that failed requests may go again at once.
func (c *client) signal() {
	select {
	case c.up <- struct{}{}:
	default:
	}
}

// tcpPath carries requests over HTTPS on TCP. It speaks HTTP/1.1 with keep-alive,
// not HTTP/2: Go's HTTP/2 transport puts every request to a host on one connection,
// one congestion window that a single loss halves, which is what the QUIC pool's
// several connections avoid. Over HTTP/1.1 each request in flight has a TCP
// connection of its own, as many as the forwarder has uploads in flight, kept for
// the next request; the TLS session cache makes a new one a resumed handshake.
type tcpPath struct {
	tr     *http.Transport
	tls    *tls.Config
	dialer *net.Dialer
	open   atomic.Int64
}

func newTCPPath(tlsConf *tls.Config, idle, dialTimeout time.Duration) *tcpPath {
	tlsConf = tlsConf.Clone()
	tlsConf.NextProtos = []string{"http/1.1"}
	// Its own session cache: quic-go keeps QUIC transport parameters in the
	// sessions of the QUIC side's cache.
	tlsConf.ClientSessionCache = privateSessions{tls.NewLRUClientSessionCache(8)}
	// A path that goes silent with data outstanding fails its requests after idle
	// (TCP_USER_TIMEOUT), as a silent QUIC connection ends after its idle timeout,
	// instead of after TCP's fifteen minutes of retransmissions; keep-alives find a
	// dead idle connection.
	userTimeout := int(idle.Milliseconds())
	d := &net.Dialer{
		Timeout:         dialTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: idle / 3, Interval: idle / 3, Count: 3},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, userTimeout)
			}); err != nil {
				return err
			}
			return serr
		},
	}
	p := &tcpPath{tls: tlsConf, dialer: d}
	p.tr = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			p.open.Add(1)
			return &countedConn{Conn: conn, open: &p.open}, nil
		},
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: dialTimeout,
		ForceAttemptHTTP2:   false,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     idle,
		DisableCompression:  true, // chunks carry their own zstd
	}
	return p
}

// probe makes one TCP connection and TLS handshake to addr and closes it.
func (p *tcpPath) probe(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.dialer.Timeout)
	defer cancel()
	conf := p.tls.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil && conf.ServerName == "" {
		conf.ServerName = host
	}
	conn, err := (&tls.Dialer{NetDialer: p.dialer, Config: conf}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (p *tcpPath) close() { p.tr.CloseIdleConnections() }

// countedConn counts itself out of the open connections once closed.
type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}
