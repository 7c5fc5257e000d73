package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sync"
	"time"

	"lifeline/hardware/serialport"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/protocols"
)

// sink is the Sink handed to a driver for one session: it stamps the steady time axis
// on waves, counts, and publishes. Only the driver's goroutine calls it.
type sink struct {
	r  *Reader
	tl *telemetry.Timeline
}

func (s *sink) Emit(e telemetry.Event) {
	if w, ok := e.(*telemetry.Wave); ok {
		if w.ReceiveTime.IsZero() {
			w.ReceiveTime = time.Now()
		}
		s.tl.Place(w)
	}
	s.r.events.Add(1)
	s.r.mEvents.Inc()
	s.r.cfg.Bus.Publish(s.r.cfg.Name, e)
}

func (s *sink) Frame() {
	now := time.Now()
	s.r.frames.Add(1)
	s.r.mFrames.Inc()
	s.r.lastFrame.Store(now.UnixNano())
	s.r.mLast.Set(float64(now.UnixNano()) / 1e9)
}

func (s *sink) Skipped(n int, reason string) {
	s.r.badBytes.Add(uint64(n))
	s.r.mBad.Add(float64(n))
}

func modeOf(m telemetry.SerialMode) serialport.Mode {
	return serialport.Mode{Baud: m.Baud, DataBits: m.DataBits, Parity: m.Parity.String()[0], StopBits: m.StopBits}
}

// openSerial opens the configured device at mode, or, when it is gone and we know the
// USB adapter it was, that adapter under its new name.
func (r *Reader) openSerial(mode telemetry.SerialMode) (*serialport.Port, error) {
	path := r.cfg.Port
	p, err := serialport.Open(path, modeOf(mode))
	if err != nil && errors.Is(err, fs.ErrNotExist) && !r.usb.IsZero() {
		if moved, ferr := serialport.Find(r.cfg.Lister, r.usb); ferr == nil {
			r.log.Warn("monitor adapter found again under another name", "usb", r.usb.String(), "device", moved)
			path = moved
			p, err = serialport.Open(path, modeOf(mode))
		}
	}
	if err != nil {
		return nil, err
	}
	p.WriteTimeout = r.cfg.WriteTimeout
	if r.usb.IsZero() {
		if id, ierr := serialport.Identify(r.cfg.Lister, path); ierr == nil && !id.IsZero() {
			r.usb = id
		}
	}
	r.setDevice(path, r.Status().Protocol)
	return p, nil
}

func (r *Reader) runSerial(ctx context.Context) error {
	wait := r.cfg.RetryMin
	last := "" // the protocol detected last time is tried first
	first := true
	for ctx.Err() == nil {
		drv, err := r.pickDriver(ctx, &last)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			r.setState(StateDisconnected, err)
			r.log.Warn("monitor not readable; retrying", "err", err, "retry_in", wait)
			if !r.backoff(ctx, &wait) {
				break
			}
			continue
		}
		port, err := r.openSerial(drv.Serial())
		if err != nil {
			r.setState(StateDisconnected, err)
			r.log.Warn("cannot open monitor port; retrying", "err", err, "retry_in", wait)
			if !r.backoff(ctx, &wait) {
				break
			}
			continue
		}
		if !first {
			r.reconnects.Add(1)
			r.mReconnects.Inc()
		}
		first = false
		r.setDevice(r.Status().Device, drv.Protocol())
		start := time.Now()
		r.session(ctx, drv, port, port.Path) // logs and publishes how it ended
		if ctx.Err() != nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			wait = r.cfg.RetryMin // it worked for a while: come back quickly
		}
		if !r.backoff(ctx, &wait) {
			break
		}
	}
	return nil
}

// pickDriver returns the configured driver, or detects one.
func (r *Reader) pickDriver(ctx context.Context, last *string) (telemetry.Driver, error) {
	if r.cfg.Protocol != protocols.Auto {
		return driverFor(r.cfg.Drivers, r.cfg.Protocol), nil
	}
	r.setState(StateDetecting, nil)
	order := make([]telemetry.Driver, 0, len(r.cfg.Drivers))
	if d := driverFor(r.cfg.Drivers, *last); d != nil {
		order = append(order, d)
	}
	for _, d := range r.cfg.Drivers {
		if d.Protocol() != *last {
			order = append(order, d)
		}
	}
	var errs []error
	for _, d := range order {
		ok, err := r.probe(ctx, d)
		if err != nil {
			errs = append(errs, err)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, err // no port at all: no point trying the other modes
			}
			continue
		}
		if ok {
			r.log.Info("monitor protocol detected", "protocol", d.Protocol())
			*last = d.Protocol()
			return d, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	switch {
	case len(errs) == 0:
		return nil, fmt.Errorf("%w on %s (tried %v)", errNotRecognised, r.cfg.Port, names(r.cfg.Drivers))
	case len(errs) == len(order):
		// The port could not be opened in any mode: that, not the protocol, is the
		// problem to report.
		return nil, fmt.Errorf("cannot open %s: %w", r.cfg.Port, errors.Join(errs...))
	}
	return nil, fmt.Errorf("%w on %s (tried %v): %w", errNotRecognised, r.cfg.Port, names(r.cfg.Drivers), errors.Join(errs...))
}

// probe opens the port at d's mode, sends d's probe request and listens for its window.
func (r *Reader) probe(ctx context.Context, d telemetry.Driver) (bool, error) {
	p, err := r.openSerial(d.Serial())
	if err != nil {
		return false, err
	}
	defer p.Close()
	if req := d.ProbeRequest(); len(req) > 0 {
		if _, err := p.Write(req); err != nil {
			return false, err
		}
	}
	p.SetReadTimeout(100 * time.Millisecond)
	deadline := time.Now().Add(d.ProbeWindow())
	var buf []byte
	chunk := make([]byte, 1024)
	for time.Now().Before(deadline) && ctx.Err() == nil && len(buf) < 16<<10 {
		n, err := p.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if d.Probe(buf) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

// session runs drv on an open port until the port fails or ctx ends, watching for
// silence. It closes the port.
func (r *Reader) session(ctx context.Context, drv telemetry.Driver, port interface {
	telemetry.Port
	io.Closer
}, device string) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.setState(StateConnected, nil)
	r.lastFrame.Store(time.Now().UnixNano()) // silence is measured from the open
	r.device(telemetry.DeviceConnected, fmt.Sprintf("%s on %s", drv.Protocol(), device))
	r.log.Info("monitor connected", "protocol", drv.Protocol(), "device", device)

	var wg sync.WaitGroup
	// The watchdog reports silence and closes the port when ctx ends (which unblocks
	// the driver's Read).
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(min(r.cfg.SilenceLimit/10, 250*time.Millisecond))
		defer tick.Stop()
		silent := false
		for {
			select {
			case <-sctx.Done():
				port.Close()
				return
			case <-tick.C:
			}
			quiet := time.Since(time.Unix(0, r.lastFrame.Load()))
			switch {
			case !silent && quiet >= r.cfg.SilenceLimit:
				silent = true
				r.setState(StateSilent, nil)
				r.device(telemetry.DeviceSilent, fmt.Sprintf("no valid data for %v", quiet.Round(100*time.Millisecond)))
				r.log.Warn("monitor silent", "for", quiet.Round(100*time.Millisecond))
			case silent && quiet < r.cfg.SilenceLimit:
				silent = false
				r.setState(StateConnected, nil)
				r.device(telemetry.DeviceConnected, "data resumed")
				r.log.Info("monitor data resumed")
			}
		}
	}()
	s := &sink{r: r, tl: &telemetry.Timeline{}}
	err := drv.Run(sctx, port, s)
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		err = errors.New("driver stopped")
	}
	r.setState(StateDisconnected, err)
	r.device(telemetry.DeviceDisconnected, err.Error())
	r.log.Warn("monitor disconnected", "err", err)
	return err
}

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
// Accepting runs beside the sessions so that a monitor reconnecting (its old
// connection half-open after a network blip) replaces the old session at once.
func (r *Reader) serveMonitor(ctx context.Context, drv telemetry.Driver, ln net.Listener) {
	conns := make(chan net.Conn)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				close(conns)
				return
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

// serveConn reads the monitor on c until the connection fails, ctx ends, or a new
// connection arrives on conns, which it returns for the next session.
func (r *Reader) serveConn(ctx context.Context, drv telemetry.Driver, c net.Conn, conns <-chan net.Conn) (next net.Conn) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.session(sctx, drv, r.newConn(c), c.RemoteAddr().String())
	}()
	select {
	case <-done:
	case next = <-conns:
		if next != nil {
			r.log.Info("monitor reconnected; replacing the old connection", "remote", next.RemoteAddr().String())
		}
		cancel()
		<-done
	case <-ctx.Done():
		cancel()
		<-done
	}
	return next
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
