package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"lifeline/dispatch/jt808"
	"lifeline/internal/durable"
	"lifeline/internal/service"
)

// maxBatchItems bounds one 0x0704: location bodies of ~40 bytes each with their
// length fit one packet (1023 bytes) at 20, so a batch never needs sub-packages.
const maxBatchItems = 20

// errMoved ends a session because dispatch gave a new server address.
var errMoved = errors.New("dispatch: the platform moved the terminal to a new server")

// Run connects to the platform and sends reports until ctx ends, reconnecting with
// back-off (1 s doubling to 30 s) when the platform is unreachable or stops
// answering. Reports wait in the durable backlog meanwhile. It reports through h:
// ready while connected, degraded (with the backlog size) while not.
func (r *Reporter) Run(ctx context.Context, h *service.Health) error {
	backoff := time.Second
	for ctx.Err() == nil {
		s, err := r.connect(ctx)
		if err != nil {
			r.count(func(s *Stats) { s.ConnectFailed++ })
			h.Degraded(fmt.Sprintf("dispatch platform unreachable; %d reports kept for later", r.backlog.Len()), err)
			r.cfg.Log.Warn("dispatch: cannot reach the platform", "server", r.server(), "err", err, "backlog", r.backlog.Len())
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		r.count(func(s *Stats) { s.Connects++ })
		h.Ready("reporting to " + r.server())
		err = r.serve(ctx, s, h)
		s.Close()
		if ctx.Err() != nil {
			break
		}
		h.Degraded(fmt.Sprintf("dispatch session ended; %d reports kept for later", r.backlog.Len()), err)
		r.cfg.Log.Warn("dispatch: session ended", "err", err)
	}
	return nil
}

func (r *Reporter) server() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.params.server
}

func (r *Reporter) connect(ctx context.Context) (*jt808.Session, error) {
	r.mu.Lock()
	p := r.params
	r.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, r.cfg.ResponseTimeout)
	defer cancel()
	conn, err := r.cfg.Dial(dctx, p.server)
	if err != nil {
		return nil, err
	}
	s, err := jt808.Open(ctx, conn, jt808.SessionConfig{
		Edition: r.cfg.Edition, Phone: r.cfg.Phone, AuthCode: p.authCode,
		Register: r.cfg.Register, IMEI: r.cfg.IMEI, Software: r.cfg.Software,
		ResponseTimeout: r.cfg.ResponseTimeout, Heartbeat: p.heartbeat, Log: r.cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	if code := s.AuthCode(); code != p.authCode {
		r.mu.Lock()
		r.params.authCode = code
		err := r.saveParamsLocked()
		r.mu.Unlock()
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// serve sends reports and handles commands until the session fails.
func (r *Reporter) serve(ctx context.Context, s *jt808.Session, h *service.Health) error {
	for {
		sent, err := r.sendPending(ctx, s)
		if err != nil {
			return err
		}
		if sent {
			continue // more may be waiting; commands are taken between sends below
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.Done():
			return s.Err()
		case <-r.wake:
		case cmd := <-s.Commands():
			if err := r.command(s, cmd); err != nil {
				return err
			}
		}
	}
}

// sendPending sends the newest report live, then one batch of the backlog, oldest
// first. A backlog of one report goes as a batch of one too: as a 0x0200 it would
// reach the platform as the ambulance's position now, after newer ones had, and the
// map would jump back. It returns whether it sent anything.
func (r *Reporter) sendPending(ctx context.Context, s *jt808.Session) (bool, error) {
	select {
	case cmd := <-s.Commands():
		if err := r.command(s, cmd); err != nil {
			return false, err
		}
	default:
	}
	// The newest report goes live first, so dispatch sees where the ambulance is now
	// even while a blind zone's backlog is still going up behind it.
	r.mu.Lock()
	live := r.liveSeq
	r.liveSeq = 0
	r.mu.Unlock()
	sent := false
	if live != 0 {
		if body, ok, err := r.backlog.get(live); err != nil {
			return false, err
		} else if ok {
			if err := r.sendLive(ctx, s, durable.Item{Seq: live, Value: body}); err != nil {
				return false, err // it stays in the backlog and goes up in a batch
			}
			sent = true
		}
	}
	items, err := r.backlog.oldest(maxBatchItems)
	if err != nil || len(items) == 0 {
		return sent, err
	}
	return true, r.sendBatch(ctx, s, items)
}

func (r *Reporter) sendLive(ctx context.Context, s *jt808.Session, it durable.Item) error {
	if _, err := s.Call(ctx, jt808.IDLocation, it.Value); err != nil {
		r.count(func(s *Stats) { s.SendFailed++ })
		return fmt.Errorf("dispatch: live report: %w", err)
	}
	r.count(func(s *Stats) { s.SentLive++ })
	return r.backlog.ack(it.Seq)
}

func (r *Reporter) sendBatch(ctx context.Context, s *jt808.Session, items []durable.Item) error {
	b := jt808.BatchLocation{Type: jt808.BatchBlindZone}
	seqs := make([]uint64, len(items))
	for i, it := range items {
		b.Items = append(b.Items, it.Value)
		seqs[i] = it.Seq
	}
	if _, err := s.Call(ctx, jt808.IDBatchLocation, b.Marshal()); err != nil {
		r.count(func(s *Stats) { s.SendFailed++ })
		return fmt.Errorf("dispatch: blind-zone batch of %d: %w", len(items), err)
	}
	r.count(func(s *Stats) { s.SentBacklog += int64(len(items)); s.Batches++ })
	return r.backlog.ack(seqs...)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
