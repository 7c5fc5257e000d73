package whip

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"lifeline/internal/service"
)

// Run publishes until ctx ends: it opens a session, keeps it through link drops with
// ICE restarts, and opens a new one, after a back-off, only when the endpoint forgot
// the old one or it cannot be restarted. With a Route, each session goes where the
// route says, and an endpoint that gives no session is reported to it: when the route
// then names another endpoint not yet tried since the last session, the box publishes
// there at once. It reports through h and returns nil when ctx ends, after DELETEing
// the session.
func (p *Publisher) Run(ctx context.Context, h *service.Health) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("whip: publisher already running")
	}
	defer p.running.Store(false)
	defer p.setState(StateStopped)
	defer p.routeCalls.Wait()
	delay := p.cfg.RetryInitial
	tried := map[string]bool{} // endpoints that gave no session since the last one connected
	for {
		endpoint := p.nextEndpoint()
		p.mu.Lock()
		p.endpointNow = endpoint
		p.mu.Unlock()
		p.setState(StateConnecting)
		h.Degraded("publishing to "+endpoint, nil)
		connected, err := p.publishOnce(ctx, h, endpoint)
		if ctx.Err() != nil {
			return nil
		}
		p.recordError(err)
		if connected {
			// The session played and was lost: the doctor is waiting for the picture,
			// so the new session is opened at once; back-off is for endpoints that
			// cannot give the box a session at all.
			delay = p.cfg.RetryInitial
			clear(tried)
			h.Degraded("session lost; opening a new one", err)
			continue
		}
		if p.cfg.Route != nil {
			tried[endpoint] = true
			p.cfg.Route.Unreachable(endpoint)
			if next := p.cfg.Route.Endpoint(); !tried[next] && ctx.Err() == nil {
				h.Degraded("no session at "+endpoint+"; trying "+next, err)
				continue
			}
			clear(tried)
		}
		p.setState(StateWaiting)
		h.Degraded(fmt.Sprintf("no live session; retrying in %s", delay), err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(delay*2, p.cfg.RetryMax)
	}
}

// publishOnce runs one session from its POST to its end, and says whether it ever
// connected and why it ended.
func (p *Publisher) publishOnce(ctx context.Context, h *service.Health, endpoint string) (connected bool, err error) {
	s, err := p.open(ctx, endpoint)
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	p.current = s
	p.sessions++
	p.mu.Unlock()
	defer func() {
		p.media.setConnected(false)
		p.mu.Lock()
		p.current = nil
		p.mu.Unlock()
		p.end(s)
	}()
	sv := &sessionLoop{p: p, s: s, h: h}
	return sv.run(ctx)
}

// sessionLoop is the state machine of one session. Its timers are explicit: connect
// bounds ICE and DTLS of a new session and each restart; restart fires when ICE has
// been disconnected RestartDelay long, and again at the restart pace while the link
// stays down.
type sessionLoop struct {
	p *Publisher
	s *session
	h *service.Health

	connected  bool      // the session connected at least once
	restarting bool      // an ICE restart is under way or due
	lostAt     time.Time // when the link was lost, while restarting
	// asking is set while the route is being told that a restart found no path to
	// the session's endpoint.
	asking  atomic.Bool
	connect *time.Timer
	restart *time.Timer
}

func (l *sessionLoop) run(ctx context.Context) (bool, error) {
	l.connect = time.NewTimer(l.p.cfg.ConnectTimeout)
	l.restart = time.NewTimer(0)
	stopTimer(l.restart)
	defer stopTimer(l.connect)
	defer stopTimer(l.restart)
	for {
		select {
		case <-ctx.Done():
			return l.connected, ctx.Err()
		case <-l.s.stateChanged:
			if err := l.onState(l.s.pc.ConnectionState()); err != nil {
				return l.connected, err
			}
		case <-l.connect.C:
			if !l.connected {
				return false, fmt.Errorf("whip: session %s did not connect within %s", l.s.resourceURL(), l.p.cfg.ConnectTimeout)
			}
			// A restart was accepted but ICE found no path yet: the link is still down,
			// or the box's address changed again. Restart once more.
			l.p.cfg.Log.Info("whip: ICE restart did not connect; restarting again", "session", l.s.resourceURL())
			l.restart.Reset(0)
		case <-l.restart.C:
			if err := l.restartICE(ctx); err != nil {
				return l.connected, err
			}
		}
	}
}

// onState follows the peer connection's state; it returns an error when the session
// is beyond saving.
func (l *sessionLoop) onState(st webrtc.PeerConnectionState) error {
	p := l.p
	switch st {
	case webrtc.PeerConnectionStateConnected:
		stopTimer(l.connect)
		stopTimer(l.restart)
		if l.connected && !l.restarting {
			return nil // DTLS or ICE settled again without the box noticing a loss
		}
		l.connected, l.restarting = true, false
		p.media.setConnected(true)
		p.setState(StateConnected)
		l.h.Ready("publishing to " + l.s.url)
		// The far end's decoder is new, or lost the frames of the outage: the gate
		// now waits for an IDR, and a camera with a long GOP should send one now
		// rather than leave the doctor a frozen picture.
		p.keyframeWanted()
	case webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateFailed:
		if !l.connected {
			return nil // still within the connect timer
		}
		p.media.setConnected(false)
		if !l.restarting {
			l.restarting, l.lostAt = true, time.Now()
			p.setState(StateRestarting)
			l.h.Degraded("link lost; restarting ICE", nil)
			l.restart.Reset(p.cfg.RestartDelay)
		}
	case webrtc.PeerConnectionStateClosed:
		return errors.New("whip: peer connection closed")
	}
	return nil
}

// restartICE runs one ICE restart. A network error (the link is still down) retries
// at the restart pace; an endpoint that forgot the session or cannot restart it ends
// the session so that Run opens a new one.
func (l *sessionLoop) restartICE(ctx context.Context) error {
	p := l.p
	if l.s.pc.ConnectionState() == webrtc.PeerConnectionStateConnected && !l.restarting {
		return nil
	}
	if lost := time.Since(l.lostAt); lost > p.cfg.RestartGiveUp {
		return fmt.Errorf("whip: session %s: no path for %s despite ICE restarts", l.s.resourceURL(), lost.Round(time.Second))
	}
	if p.cfg.Route != nil {
		if now := p.cfg.Route.Endpoint(); now != l.s.url {
			// The route moved (told by an earlier restart, or by the box's own check of
			// its hubs): a session at the endpoint it names now replaces this one.
			return fmt.Errorf("whip: %s is out of reach and the route names %s: opening a session there", l.s.url, now)
		}
	}
	began := time.Now()
	stale, err := p.restartICE(ctx, l.s)
	switch {
	case err == nil:
		p.mu.Lock()
		p.restarts++
		p.mu.Unlock()
		if stale {
			// Accepted, but its candidates are on an address the box no longer has.
			p.cfg.Log.Info("whip: the box's address changed during the restart; restarting again from the new one", "session", l.s.resourceURL())
			l.restart.Reset(0)
			return nil
		}
		l.connect.Reset(p.cfg.RestartTimeout)
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errAddressChanged):
		// A handover: the hub is as reachable as before, from the new address.
		p.cfg.Log.Info("whip: the box's address changed during an ICE restart; restarting from the new one", "session", l.s.resourceURL())
		l.restart.Reset(0)
		return nil
	case needsNewSession(err):
		return fmt.Errorf("ICE restart refused, opening a new session: %w", err)
	default:
		// Restarts keep one per RestartTimeout. A PATCH that hung until its timeout
		// (sent just before a handover, from the address it killed) has used up its
		// turn already: the next goes at once, or the picture would wait twice.
		p.recordError(err)
		l.tellRoute()
		l.restart.Reset(max(0, p.cfg.RestartTimeout-time.Since(began)))
		return nil
	}
}

// tellRoute tells the route, without holding up the session, that a restart did not
// reach the session's endpoint. The route moves only if another endpoint is in reach:
// in a tunnel none is, and the session goes on restarting where it is.
func (l *sessionLoop) tellRoute() {
	if l.p.cfg.Route == nil || !l.asking.CompareAndSwap(false, true) {
		return
	}
	l.p.routeCalls.Go(func() {
		defer l.asking.Store(false)
		l.p.cfg.Route.Unreachable(l.s.url)
	})
}

// stopTimer stops t and drains its channel, so that a later Reset starts clean.
func stopTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}
