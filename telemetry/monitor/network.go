package monitor

import (
	"context"
	"net"
	"sync"
	"time"

	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
)

// runNetwork serves HL7/MLLP over TCP, dialling the monitor or listening for it.
func (r *Reader) runNetwork(ctx context.Context) error {
	drv := driverFor(r.cfg.Drivers, hl7.Protocol.Name)
	r.setDevice(r.endpoint.Addr, hl7.Protocol.Name)
	if r.endpoint.Kind == telemetry.EndpointDial {
		r.dialMonitor(ctx, drv)
		return nil
	}
	ln := r.listen(ctx)
	if ln == nil {
		return nil
	}
	r.setDevice(ln.Addr().String(), hl7.Protocol.Name)
	r.serveMonitor(ctx, drv, ln)
	return nil
}

// dialMonitor connects to a listening monitor or gateway, reads it until the
// connection fails, and connects again, until ctx ends.
func (r *Reader) dialMonitor(ctx context.Context, drv telemetry.Driver) {
	wait := r.cfg.RetryMin
	for ctx.Err() == nil {
		r.setState(StateOpening, nil)
		c, err := hl7.Dial(ctx, r.endpoint.Addr)
		if err != nil {
			r.setState(StateDisconnected, err)
			r.log.Warn("cannot connect to the monitor; retrying", "err", err, "retry_in", wait)
			if !r.backoff(ctx, &wait) {
				return
			}
			continue
		}
		wait = r.cfg.RetryMin
		r.session(ctx, drv, r.newConn(c), c.RemoteAddr().String())
		r.reconnects.Add(1)
		r.mReconnects.Inc()
	}
}

// listen opens the address monitors connect to, retrying with back-off (the address
// may be taken for a while); nil when ctx ended first.
func (r *Reader) listen(ctx context.Context) net.Listener {
	wait := r.cfg.RetryMin
	for ctx.Err() == nil {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", r.endpoint.Addr)
		if err == nil {
			return ln
		}
		r.setState(StateDisconnected, err)
		r.log.Error("cannot listen for the monitor's HL7 connection; retrying", "addr", r.endpoint.Addr, "err", err)
		if !r.backoff(ctx, &wait) {
			return nil
		}
	}
	return nil
}

// serveMonitor reads one monitor connection at a time from ln until ctx ends, and
// closes ln.
//
// Whoever connects to this port speaks for the patient, so connections are admitted
// with care: one from an address outside Allow is refused at once, and while a session
// is live a new connection is refused too, so that nobody on the network can push the
// real monitor off. Only a session silent for SilenceLimit gives way to a newcomer:
// that is a monitor reconnecting after a network blip, its old connection left
// half-open, and it gets back within a silence limit and its own retry.
func (r *Reader) serveMonitor(ctx context.Context, drv telemetry.Driver, ln net.Listener) {
	conns := make(chan net.Conn)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(conns)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !r.admits(c.RemoteAddr()) {
				r.refuse(c, refusedStranger)
				continue
			}
			select {
			case conns <- c:
			case <-ctx.Done():
				c.Close()
			}
		}
	}()
	defer func() { ln.Close(); wg.Wait() }()
	r.setState(StateListening, nil)
	var next net.Conn
	for ctx.Err() == nil {
		c := next
		if c == nil {
			select {
			case <-ctx.Done():
				return
			case c = <-conns:
				if c == nil {
					return
				}
			}
		}
		next = r.serveConn(ctx, drv, c, conns)
		r.reconnects.Add(1)
		r.mReconnects.Inc()
		if ctx.Err() == nil {
			r.setState(StateListening, nil)
		}
	}
}

// serveConn reads the monitor on c until the connection fails or ctx ends. A new
// connection arriving on conns meanwhile is refused while c's monitor sends; when c
// has been silent for SilenceLimit, the newcomer ends c's session and is returned to
// be served next.
func (r *Reader) serveConn(ctx context.Context, drv telemetry.Driver, c net.Conn, conns <-chan net.Conn) (next net.Conn) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Silence is measured from the open; set here, before any newcomer is looked at,
	// so that the previous session's last frame never counts against this one.
	r.lastFrame.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.session(sctx, drv, r.newConn(c), c.RemoteAddr().String())
	}()
	for {
		select {
		case <-done:
			return nil
		case n, ok := <-conns:
			if !ok {
				conns = nil // the listener failed: serve c to its end, then stop
				continue
			}
			if r.quiet() < r.cfg.SilenceLimit {
				r.refuse(n, refusedBusy)
				continue
			}
			r.log.Info("monitor silent; a new connection takes its place", "old", c.RemoteAddr().String(), "new", n.RemoteAddr().String(), "silent_for", r.quiet().Round(100*time.Millisecond))
			cancel()
			<-done
			return n
		case <-ctx.Done():
			cancel()
			<-done
			return nil
		}
	}
}

// conn makes a net.Conn a closable telemetry.Port with read timeouts and bounded writes.
type conn struct {
	telemetry.Port
	c net.Conn
}

func (r *Reader) newConn(c net.Conn) conn {
	return conn{Port: telemetry.DeadlinePort(c, r.cfg.WriteTimeout), c: c}
}

func (x conn) Close() error { return x.c.Close() }
