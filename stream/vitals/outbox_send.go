package vitals

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/internal/service"
)

// replayBatch is how many reliable messages the sender reads from the ring at a time.
const replayBatch = 256

// maxWaveSignals bounds the per-signal gap bookkeeping; a monitor inventing codes
// cannot grow it further (forgetting costs only a spurious gap flag).
const maxWaveSignals = 1024

// sendReliable is the one goroutine that sends on the reliable channel: after every
// OpenReliable it starts from the hub's ack, so the replay and the live stream are the same
// loop and stay in seq order.
func (o *Outbox) sendReliable(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		}
		for ctx.Err() == nil && o.sendBatch(ctx) {
		}
	}
}

// sendBatch sends the next run of unsent messages and reports whether there may be
// more to send at once.
func (o *Outbox) sendBatch(ctx context.Context) bool {
	o.mu.Lock()
	send, gen, reserved := o.reliable, o.gen, o.ring.state.meta.Reserved
	var batch []entry
	var err error
	if send != nil {
		batch, err = o.unsentLocked(o.sent+1, replayBatch)
	}
	o.mu.Unlock()
	if err != nil {
		o.log.Error("vitals ring not readable; will retry", "err", err)
		return o.pause(ctx, o.cfg.RetryEvery)
	}
	for _, e := range batch {
		if e.seq > reserved {
			// Not yet covered by a durable reservation: a power cut now could make the
			// box reuse this seq. Commit first.
			signal(o.flushNow)
			return o.pause(ctx, o.cfg.FlushEvery/4)
		}
		if err := send(e.data); err != nil {
			o.metrics.sendErrors.Inc()
			if !o.sendFailing {
				// Once per outage: the publisher notices a dead link a little later.
				o.log.Warn("vitals messages not sent; retrying until they go or the channel closes", "seq", e.seq, "err", err)
				o.sendFailing = true
			}
			return o.pause(ctx, o.cfg.RetryEvery)
		}
		o.sendFailing = false
		o.metrics.sent.WithLabelValues(LabelReliable).Inc()
		o.mu.Lock()
		if o.gen != gen {
			// Detached or re-attached meanwhile: start over from the ack.
			o.mu.Unlock()
			return true
		}
		o.sent = max(o.sent, e.seq)
		o.mu.Unlock()
	}
	return len(batch) > 0
}

// pause waits d (or until ctx ends) and reports whether to go on sending.
func (o *Outbox) pause(ctx context.Context, d time.Duration) bool {
	return service.Sleep(ctx, d)
}

// unsentLocked returns up to n reliable messages from seq from on: committed ones from
// the ring, then pending ones. o.mu is held, so a commit cannot move entries out of
// pending between the two reads (a commit finishes before it trims pending).
func (o *Outbox) unsentLocked(from uint64, n int) ([]entry, error) {
	var out []entry
	if len(o.pending) == 0 || from < o.pending[0].seq {
		var err error
		if out, err = o.ring.readFrom(from, n); err != nil {
			return nil, err
		}
	}
	last := from - 1
	if len(out) > 0 {
		last = out[len(out)-1].seq
	}
	for _, e := range o.pending {
		if len(out) >= n {
			break
		}
		if e.seq > last {
			out = append(out, e)
		}
	}
	return out, nil
}

// sendWave sends one wave chunk now or never. A chunk that cannot go (detached, the
// channel refused it) is lost, and the next chunk of the same signal carries the gap
// flag; so does the first chunk of every signal after a loss that may have hit any.
func (o *Outbox) sendWave(msg Message) {
	key := waveKey{source: msg.Source, code: msg.Code, channel: msg.Channel}
	o.mu.Lock()
	send := o.wave
	if send == nil || o.nextWave > o.ring.state.meta.WaveReserved {
		if send != nil {
			signal(o.flushNow)
		}
		delete(o.waves, key)
		o.mu.Unlock()
		o.metrics.waveLost.Inc()
		return
	}
	if o.nextWave+waveReserveStep/2 > o.ring.state.meta.WaveReserved {
		signal(o.flushNow) // reserve the next block before this one runs out
	}
	lossGen := o.lossGen
	if o.waves[key] != lossGen {
		msg.Gap = true
	}
	msg.Seq, msg.Epoch = o.nextWave, o.epoch
	o.nextWave++
	o.mu.Unlock()

	data, err := Marshal(&msg)
	if err != nil {
		o.metrics.invalid.Inc()
		o.log.Debug("wave chunk refused by the encoder", "mdc", msg.MDC, "err", err)
	} else if err = send(data); err != nil {
		o.metrics.waveLost.Inc()
	} else {
		o.metrics.sent.WithLabelValues(LabelWave).Inc()
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		delete(o.waves, key)
		return
	}
	if len(o.waves) >= maxWaveSignals {
		clear(o.waves)
	}
	o.waves[key] = lossGen
}

// markWaveLoss makes the next chunk of every signal carry the gap flag.
func (o *Outbox) markWaveLoss() {
	o.mu.Lock()
	o.lossGen++
	o.mu.Unlock()
}

type outboxMetrics struct {
	queued, commits, dropped, waveLost, invalid, sendErrors prometheus.Counter
	sent                                                    *prometheus.CounterVec
	ring, acked                                             prometheus.Gauge
}

func (m *outboxMetrics) register(reg prometheus.Registerer) error {
	const p = "lifeline_stream_vitals_outbox_"
	m.queued = prometheus.NewCounter(prometheus.CounterOpts{Name: p + "queued_total", Help: "Reliable vitals messages numbered and queued for the hub."})
	m.commits = prometheus.NewCounter(prometheus.CounterOpts{Name: p + "commits_total", Help: "Group commits of the vitals ring (one fsync each)."})
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: p + "dropped_total", Help: "Unacknowledged reliable vitals messages dropped because the ring was full (oldest first)."})
	m.waveLost = prometheus.NewCounter(prometheus.CounterOpts{Name: p + "wave_lost_total", Help: "Wave chunks not sent (no channel, or the channel refused them); the next chunk carries the gap flag."})
	m.invalid = prometheus.NewCounter(prometheus.CounterOpts{Name: p + "invalid_total", Help: "Events the encoder refused (out of the format's bounds)."})
	m.sendErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: p + "send_errors_total", Help: "Reliable sends that failed and were retried."})
	m.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: p + "sent_total", Help: "Vitals messages handed to the data channels, by channel."}, []string{"channel"})
	m.ring = prometheus.NewGauge(prometheus.GaugeOpts{Name: p + "ring_messages", Help: "Reliable vitals messages held in the durable ring."})
	m.acked = prometheus.NewGauge(prometheus.GaugeOpts{Name: p + "acked_seq", Help: "The hub's cumulative acknowledgement."})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.queued, m.commits, m.dropped, m.waveLost, m.invalid, m.sendErrors, m.sent, m.ring, m.acked} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("vitals: register outbox metrics: %w", err)
		}
	}
	return nil
}
