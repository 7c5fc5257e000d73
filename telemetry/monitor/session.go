package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"lifeline/hardware/serialport"
	"lifeline/telemetry"
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
