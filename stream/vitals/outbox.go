package vitals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/internal/durable"
	"lifeline/telemetry"
)

// OutboxConfig configures an Outbox. The zero value of every optional field means its
// default.
type OutboxConfig struct {
	Store  *durable.Store // the box's store; the outbox keeps its own buckets in it
	Bus    *telemetry.Bus // where the monitors' events arrive
	Device string         // the box's device ID, carried in every message
	Log    *slog.Logger   // nil: discard
	// Registerer takes the lifeline_stream_vitals_outbox_* metrics (nil: none).
	Registerer prometheus.Registerer
	// FlushEvery is the group commit interval, and so the most a power cut can lose of
	// the reliable messages (default 100 ms).
	FlushEvery time.Duration
	// RingMessages and RingBytes bound the durable ring (defaults 131072 messages and
	// 64 MiB); when either is reached the oldest unacknowledged message is dropped and
	// counted. The defaults hold 54 minutes of a 12-lead monitor reporting 40 numerics a
	// second, whose messages are under 400 bytes each (stream/VITALS.md shows the sums).
	RingMessages int
	RingBytes    int64
	// Buffer is the bus subscription size (default 16384 events, over 10 s of a 12-lead
	// ECG in 50-sample blocks).
	Buffer int
	// RetryEvery is the pause before a reliable send that failed is tried again on the
	// same channels (default 200 ms).
	RetryEvery time.Duration
	// OnControl receives every control message from the hub once, in order (text
	// guidance, requests). It runs on the publisher's goroutine: return quickly.
	OnControl func(Control)
}

func (c *OutboxConfig) setDefaults() error {
	if c.Store == nil || c.Bus == nil {
		return errors.New("vitals: outbox needs a store and a bus")
	}
	if c.Device == "" || len(c.Device) > maxDevice {
		return fmt.Errorf("vitals: outbox device ID %q must be 1 to %d bytes", clip(c.Device, maxDevice), maxDevice)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.FlushEvery <= 0 {
		c.FlushEvery = 100 * time.Millisecond
	}
	if c.RingMessages <= 0 {
		c.RingMessages = 1 << 17
	}
	if c.RingBytes <= 0 {
		c.RingBytes = 64 << 20
	}
	if c.Buffer <= 0 {
		c.Buffer = 16384
	}
	if c.RetryEvery <= 0 {
		c.RetryEvery = 200 * time.Millisecond
	}
	return nil
}

// Control is one message from the hospital to the crew.
type Control struct {
	Seq     uint64    `json:"seq"`  // the hub's control sequence number
	Type    string    `json:"type"` // "text" for guidance; other request types as the hub defines them
	ID      string    `json:"id"`   // the hub's identifier of the message
	Text    string    `json:"text,omitempty"`
	From    string    `json:"from"` // who sent it, as the hub names them
	HubTime time.Time `json:"hub_time"`
}

// Outbox is the box's end of the vitals channels: it turns bus events into messages,
// keeps every reliable one in a bounded durable ring until the hub acknowledges it,
// sends them in order over whatever channels the publisher has attached (replaying the
// unacknowledged ones after every reconnect), and sends wave chunks only while
// attached, marking the first chunk after any loss with the gap flag.
//
// The publisher contract: call OpenReliable and OpenWave with the send function of the
// "vitals" and "vitals-wave" data channels each time one opens (in every session),
// CloseReliable and CloseWave as soon as it closes, and HandleFromHub with every
// message arriving on "vitals" or "control". Attach and Detach do both at once. The
// send functions must not block: wave returns an error when it cannot send now (the
// chunk is lost and the next one carries the gap flag); reliable returns an error when
// the channel cannot take the message (it is tried again after RetryEvery).
type Outbox struct {
	cfg   OutboxConfig
	log   *slog.Logger
	sub   *telemetry.Subscription
	ring  *ring
	epoch string

	mu       sync.Mutex
	pending  []entry         // assigned, sent or not, not yet committed; ordered by seq
	next     uint64          // next reliable seq
	nextWave uint64          // next wave seq
	acked    uint64          // the hub's cumulative ack, durable at the next commit
	sent     uint64          // highest seq sent on the current channels
	ctrlSeen uint64          // highest control seq handed to OnControl
	ctrlGaps map[uint64]bool // seqs below ctrlSeen not yet arrived (bounded by maxControlGaps)
	// pendingDropped counts messages dropped from pending before any commit; the next
	// commit adds them to the durable drop counter.
	pendingDropped uint64
	pendingBytes   int64  // the size of pending, bounded like the ring
	committing     uint64 // last seq of the group being committed, 0 when none
	durable        uint64 // highest seq committed by this run
	reliable       func([]byte) error
	wave           func([]byte) error
	gen            uint64 // bumped when the reliable channel changes or the hub asks for a replay
	lossGen        uint64 // bumped whenever wave chunks may have been lost for every signal
	waves          map[waveKey]uint64
	wake           chan struct{}
	flushNow       chan struct{}

	// sendFailing is owned by the reliable sender goroutine: it logs a failing
	// channel once, not at every retry.
	sendFailing bool

	metrics outboxMetrics
}

type waveKey struct {
	source  string
	code    uint32
	channel string // one code on two channels is two signals, each with its own gaps
}

// NewOutbox opens the ring in the store, reserves the sequence numbers it will use and
// subscribes to the bus; call Run to start.
func NewOutbox(cfg OutboxConfig) (*Outbox, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	r, err := openRing(cfg.Store, cfg.RingMessages, cfg.RingBytes)
	if err != nil {
		return nil, err
	}
	o := &Outbox{
		cfg: cfg, log: cfg.Log.With("service", "vitals-outbox"), ring: r, epoch: r.state.meta.Epoch,
		waves: make(map[waveKey]uint64), lossGen: 1,
		wake: make(chan struct{}, 1), flushNow: make(chan struct{}, 1),
	}
	if err := o.metrics.register(cfg.Registerer); err != nil {
		return nil, err
	}
	// Resume above everything a previous run may have sent, and reserve the next block
	// on disk before anything is sent.
	meta := r.state.meta
	o.next, o.nextWave = meta.Reserved+1, meta.WaveReserved+1
	o.acked, o.sent, o.ctrlSeen = meta.Acked, meta.Acked, meta.ControlSeen
	o.ctrlGaps = make(map[uint64]bool, len(meta.ControlGaps))
	for _, seq := range meta.ControlGaps {
		o.ctrlGaps[seq] = true
	}
	meta.Reserved += reserveStep
	meta.WaveReserved += waveReserveStep
	st, _, err := r.commit(nil, meta)
	if err != nil {
		return nil, err
	}
	r.state = st
	o.sub = cfg.Bus.Subscribe("vitals-outbox", cfg.Buffer)
	return o, nil
}

// Epoch returns the ring's epoch, which every message carries.
func (o *Outbox) Epoch() string { return o.epoch }

// Run encodes and sends until ctx ends, then commits what it holds, unsubscribes and
// returns. The ring stays in the store for the next run.
func (o *Outbox) Run(ctx context.Context) error {
	defer o.sub.Unsubscribe()
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	wg.Add(2)
	go func() { defer wg.Done(); o.sendReliable(runCtx) }()
	go func() { defer wg.Done(); o.commitLoop(runCtx) }()
	defer func() {
		stop()
		wg.Wait()
	}()
	var busDropped uint64
	for {
		select {
		case <-ctx.Done():
			stop()
			wg.Wait()
			o.drainReliable()
			if err := o.flush(); err != nil {
				return fmt.Errorf("vitals: outbox final commit: %w", err)
			}
			return nil
		case m, ok := <-o.sub.C():
			if !ok {
				return errors.New("vitals: outbox bus subscription closed")
			}
			if d := o.sub.Dropped(); d != busDropped {
				// The bus dropped events for us: any signal may have a hole.
				busDropped = d
				o.markWaveLoss()
			}
			o.handle(m)
		}
	}
}

// drainReliable numbers what the bus still holds for us at shutdown, so that an
// orderly stop loses no reliable message; wave chunks could not be sent anyway.
func (o *Outbox) drainReliable() {
	for {
		select {
		case m, ok := <-o.sub.C():
			if !ok {
				return
			}
			if m.Event.Kind() != telemetry.KindWave {
				o.handle(m)
			}
		default:
			return
		}
	}
}

func (o *Outbox) handle(m telemetry.Message) {
	for _, msg := range FromEvent(o.cfg.Device, m) {
		if msg.Type == TypeWave {
			o.sendWave(msg)
			continue
		}
		if _, err := o.enqueue(msg); err != nil {
			o.log.Error("vitals message not queued", "type", msg.Type, "err", err)
		}
	}
}

// enqueue numbers a reliable message, adds it to the pending group and wakes the
// sender: it goes out at once, and to disk with the next group commit.
func (o *Outbox) enqueue(msg Message) (seq uint64, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	msg.Seq, msg.Epoch = o.next, o.epoch
	data, err := Marshal(&msg)
	if err != nil {
		return 0, err
	}
	o.next++
	o.pending = append(o.pending, entry{seq: msg.Seq, data: data})
	o.pendingBytes += int64(len(data))
	for (len(o.pending) > o.cfg.RingMessages || o.pendingBytes > o.cfg.RingBytes) && o.pending[0].seq > o.committing {
		// The store has not taken a commit for a long time (disk full or failing):
		// memory is bounded like the ring, oldest first. Entries of a commit under way
		// stay, since they are about to be in the ring.
		o.pendingBytes -= int64(len(o.pending[0].data))
		o.pending = o.pending[1:]
		o.pendingDropped++
		o.metrics.dropped.Inc()
	}
	o.metrics.queued.Inc()
	if o.next+reserveStep/2 > o.ring.state.meta.Reserved {
		signal(o.flushNow) // reserve the next block before this one runs out
	}
	signal(o.wake)
	return msg.Seq, nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// commitLoop is the group commit: every FlushEvery, or sooner when the sequence
// reservation runs low, everything pending goes to disk in one transaction.
func (o *Outbox) commitLoop(ctx context.Context) {
	t := time.NewTicker(o.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.flushNow:
		}
		if err := o.flush(); err != nil {
			// Keep the group in memory and try again: the store may be momentarily
			// unwritable. Messages still go out; only their durability waits.
			o.log.Error("vitals ring not committed; will retry", "err", err)
		}
	}
}

// flush commits the pending group, the latest ack and fresh sequence reservations.
func (o *Outbox) flush() error {
	o.mu.Lock()
	group := append([]entry(nil), o.pending...)
	meta := o.ring.state.meta
	meta.Acked, meta.ControlSeen = o.acked, o.ctrlSeen
	meta.ControlGaps = slices.Sorted(maps.Keys(o.ctrlGaps))
	meta.Dropped += o.pendingDropped
	pendingDropped := o.pendingDropped
	// Keep a full step reserved beyond what is assigned, so the senders never wait.
	meta.Reserved = max(meta.Reserved, o.next-1+reserveStep)
	meta.WaveReserved = max(meta.WaveReserved, o.nextWave-1+waveReserveStep)
	if len(group) > 0 {
		o.committing = group[len(group)-1].seq
	}
	o.mu.Unlock()

	st, dropped, err := o.ring.commit(group, meta)
	o.mu.Lock()
	o.committing = 0
	if err != nil {
		o.mu.Unlock()
		return err
	}
	o.ring.state = st
	o.pendingDropped -= pendingDropped
	if len(group) > 0 {
		last := group[len(group)-1].seq
		i := 0
		for i < len(o.pending) && o.pending[i].seq <= last {
			o.pendingBytes -= int64(len(o.pending[i].data))
			i++
		}
		o.pending = o.pending[i:]
		o.durable = max(o.durable, last)
	}
	o.mu.Unlock()
	o.metrics.commits.Inc()
	o.metrics.dropped.Add(float64(dropped))
	o.metrics.ring.Set(float64(st.count))
	if dropped > 0 {
		o.log.Warn("vitals ring full: oldest unacknowledged messages dropped", "dropped", dropped, "total", st.meta.Dropped)
	}
	return nil
}

// Attach gives the outbox both open data channels at once; see OpenReliable and
// OpenWave. Either function may be nil when that channel is not open.
func (o *Outbox) Attach(reliable, wave func([]byte) error) {
	o.OpenWave(wave)
	o.OpenReliable(reliable)
}

// Detach takes both channels away; see CloseReliable and CloseWave.
func (o *Outbox) Detach() {
	o.CloseReliable()
	o.CloseWave()
}

// OpenReliable gives the outbox the open "vitals" channel. It replays every reliable
// message the hub has not acknowledged, in order, then continues live. nil is the
// same as CloseReliable.
func (o *Outbox) OpenReliable(send func([]byte) error) {
	o.mu.Lock()
	o.reliable = send
	o.gen++
	o.sent = o.acked
	o.mu.Unlock()
	signal(o.wake)
}

// CloseReliable takes the "vitals" channel away: nothing is sent on it until the
// next OpenReliable, and every message stays in the ring.
func (o *Outbox) CloseReliable() {
	o.mu.Lock()
	o.reliable = nil
	o.gen++
	o.mu.Unlock()
}

// OpenWave gives the outbox the open "vitals-wave" channel. nil is the same as
// CloseWave.
func (o *Outbox) OpenWave(send func([]byte) error) {
	if send == nil {
		o.CloseWave()
		return
	}
	o.mu.Lock()
	o.wave = send
	o.mu.Unlock()
}

// CloseWave takes the "vitals-wave" channel away: chunks are dropped until the next
// OpenWave, and the first chunk of every signal after it carries the gap flag.
func (o *Outbox) CloseWave() {
	o.mu.Lock()
	o.wave = nil
	o.lossGen++
	o.mu.Unlock()
}

// HandleFromHub takes one message the hub sent on "vitals" (an ack) or "control".
// An ack releases every reliable message up to its seq from the ring; a control
// message goes to OnControl once and is answered with a "delivered" receipt.
func (o *Outbox) HandleFromHub(data []byte) error {
	m, err := Decode(data)
	if err != nil {
		return err
	}
	switch {
	case m.Type == TypeAck:
		return o.ack(m)
	case Reliable(m.Type) || m.Type == TypeWave:
		return fmt.Errorf("%w: %s seq %d is a box message, not one from the hub", ErrInvalid, m.Type, m.Seq)
	}
	return o.control(m)
}

func (o *Outbox) ack(m Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if m.Epoch != o.epoch {
		return fmt.Errorf("%w: ack %d is for epoch %q, the box's is %q", ErrInvalid, m.Seq, m.Epoch, o.epoch)
	}
	if m.Seq >= o.next {
		return fmt.Errorf("%w: ack %d is beyond the last seq sent, %d", ErrInvalid, m.Seq, o.next-1)
	}
	if m.Seq > o.acked {
		o.acked = m.Seq
		o.sent = max(o.sent, m.Seq)
		o.metrics.acked.Set(float64(m.Seq))
	}
	if m.Replay {
		// The hub refused messages after its ack: send them again, in order.
		o.sent = o.acked
		o.gen++
		signal(o.wake)
	}
	return nil
}

// maxControlGaps bounds the control seqs the box waits for below the highest it has:
// the hub sends again until a message is confirmed, so a gap fills within seconds.
const maxControlGaps = 256

// control hands a control message to the crew once. The hub numbers its messages to
// a box 1, 2, 3… and sends each again until the box's receipt arrives (receipts are
// reliable messages, replayed like the vitals), so a seq the box has seen is a repeat,
// and a seq below the highest seen that never arrived fills a gap: a message the hub
// could not send at once may come after later ones.
func (o *Outbox) control(m Message) error {
	o.mu.Lock()
	fresh := false
	switch {
	case m.Seq > o.ctrlSeen:
		for seq := o.ctrlSeen + 1; seq < m.Seq && len(o.ctrlGaps) < maxControlGaps; seq++ {
			o.ctrlGaps[seq] = true
		}
		o.ctrlSeen, fresh = m.Seq, true
	case o.ctrlGaps[m.Seq]:
		delete(o.ctrlGaps, m.Seq)
		fresh = true
	}
	o.mu.Unlock()
	if !fresh {
		return nil // sent again before the receipt reached the hub; the crew has it
	}
	if o.cfg.OnControl != nil {
		o.cfg.OnControl(Control{Seq: m.Seq, Type: m.Type, ID: m.ID, Text: m.Text, From: m.From, HubTime: m.HubTime})
	}
	return o.receipt(m.Seq, "delivered")
}

// ConfirmRead tells the hub that the crew has read control message seq.
func (o *Outbox) ConfirmRead(seq uint64) error { return o.receipt(seq, "read") }

func (o *Outbox) receipt(ref uint64, state string) error {
	_, err := o.enqueue(Message{V: Version, Type: TypeReceipt, Device: o.cfg.Device, Ref: ref, State: state, BoxTime: time.Now().UTC()})
	return err
}

// OutboxStats is a snapshot for the status page and tests.
type OutboxStats struct {
	LastSeq  uint64 // highest reliable seq assigned
	Acked    uint64 // the hub's cumulative ack
	Held     int    // reliable messages held for the hub: committed in the ring or pending
	Durable  uint64 // highest seq this run has committed: a power cut cannot lose it
	Dropped  uint64 // unacknowledged messages pushed out of the ring, ever
	Attached bool
}

// Stats returns the outbox's counters.
func (o *Outbox) Stats() OutboxStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return OutboxStats{
		LastSeq: o.next - 1, Acked: o.acked,
		Held:     o.ring.state.count + len(o.pending),
		Durable:  o.durable,
		Dropped:  o.ring.state.meta.Dropped,
		Attached: o.reliable != nil,
	}
}
