package vitals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ArchiveConfig configures an Archive; the zero value of every optional field means
// its default.
type ArchiveConfig struct {
	History HistoryStore
	Log     *slog.Logger // nil: discard
	// Registerer takes the lifeline_stream_vitals_archive_* metrics (nil: none).
	Registerer prometheus.Registerer
	// FlushEvery is the group commit interval: acks go out after each commit, so it is
	// also how long a box waits at most for one (default 100 ms).
	FlushEvery time.Duration
	// MaxPending and MaxPendingBytes bound the messages waiting for a commit, over
	// all devices (defaults 65536 messages, 64 MiB). Beyond either, while the store
	// does not take commits, wave chunks are refused, and reliable ones are refused
	// and asked for again with a replay ack.
	MaxPending      int
	MaxPendingBytes int64
	// SendAck sends an ack to a device on its "vitals" channel; the hub's session
	// code routes it. It is called from the commit goroutine and must not block.
	SendAck func(device string, ack []byte)
}

// Archive is the hub's end of the vitals channels: it validates every message a box
// sends, drops duplicates by seq, keeps reliable and wave messages durably (group
// commit), acknowledges reliable ones cumulatively once they are on disk, and serves
// the history (HistoryHandler).
type Archive struct {
	cfg ArchiveConfig
	log *slog.Logger

	flushMu sync.Mutex // one commit at a time, so states reach the disk in order

	mu           sync.Mutex
	devices      map[string]*deviceStream
	pending      []Record
	pendingBytes int64
	states       map[string]StreamState // changed since the last commit

	metrics archiveMetrics
}

// deviceStream is the in-memory state of one device's stream.
type deviceStream struct {
	st      StreamState // accepted: pending or durable
	durable uint64      // reliable seq durable in st.Epoch: what an ack may say
	acked   uint64      // the last ack sent
	ackDue  bool        // a duplicate or refused message asks for an ack even without progress
	// holdFrom is the first reliable seq refused for want of room (0: none). Until a
	// message at or below it arrives again, later ones are refused too, so the ack
	// never covers a hole; every ack meanwhile asks the box to replay.
	holdFrom uint64
	waves    waveWindow
	lastSeen time.Time // when the device's last message arrived here
}

// NewArchive returns an Archive over cfg.History; call Run for the group commit.
func NewArchive(cfg ArchiveConfig) (*Archive, error) {
	if cfg.History == nil {
		return nil, errors.New("vitals: archive needs a history store")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 100 * time.Millisecond
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 65536
	}
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = 64 << 20
	}
	a := &Archive{cfg: cfg, log: cfg.Log.With("service", "vitals-archive"),
		devices: map[string]*deviceStream{}, states: map[string]StreamState{}}
	if err := a.metrics.register(cfg.Registerer); err != nil {
		return nil, err
	}
	return a, nil
}

// ErrBusy is returned by Receive when the archive holds MaxPending uncommitted
// messages; it wraps nothing from the sender's side.
var ErrBusy = errors.New("vitals: archive is not keeping up with its store")

// Receive takes one message a box sent on channel label ("vitals" or "vitals-wave").
// It reports whether the message is new (forward it to viewers) or a duplicate; an
// error says why the message was refused. The device is who the hub authenticated,
// and the message must name the same device.
func (a *Archive) Receive(device, label string, data []byte) (fresh bool, err error) {
	m, err := Decode(data)
	if err != nil {
		a.metrics.refused.Inc()
		return false, err
	}
	switch {
	case m.Device != device:
		err = fmt.Errorf("%w: %s seq %d names device %q, the connection is %q", ErrInvalid, m.Type, m.Seq, clip(m.Device, maxDevice), device)
	case m.Type == TypeWave && label != LabelWave, Reliable(m.Type) && label != LabelReliable:
		err = fmt.Errorf("%w: %s seq %d arrived on %q", ErrInvalid, m.Type, m.Seq, clip(label, 32))
	case m.Type != TypeWave && !Reliable(m.Type):
		err = fmt.Errorf("%w: %s is not a message a box sends", ErrInvalid, m.Type)
	}
	if err != nil {
		a.metrics.refused.Inc()
		return false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	d, err := a.streamLocked(device)
	if err != nil {
		return false, err
	}
	now := time.Now()
	if m.Epoch != d.st.Epoch || Reliable(m.Type) && m.Seq > d.st.Reliable+1 && now.Sub(d.lastSeen) > movedAfter {
		if d, err = a.catchUpLocked(device, d); err != nil {
			return false, err
		}
	}
	d.lastSeen = now
	if m.Epoch != d.st.Epoch {
		// The box's store was created anew: a new sequence space.
		d.st = StreamState{Epoch: m.Epoch, EpochN: d.st.EpochN + 1}
		d.durable, d.acked, d.holdFrom, d.waves = 0, 0, 0, waveWindow{}
		a.log.Info("vitals stream starts a new epoch", "device", device, "epoch", m.Epoch, "n", d.st.EpochN)
	}
	if m.Type == TypeWave {
		return a.acceptWave(device, d, m, data)
	}
	return a.acceptReliable(device, d, m, data)
}

func (a *Archive) acceptReliable(device string, d *deviceStream, m Message, data []byte) (bool, error) {
	if m.Seq <= d.st.Reliable {
		// A replay of what the hub holds: the box needs the ack to stop replaying,
		// whether or not anything new is committed.
		d.ackDue = true
		a.metrics.duplicates.Inc()
		return false, nil
	}
	if d.holdFrom != 0 && m.Seq > d.holdFrom {
		d.ackDue = true
		a.metrics.refused.Inc()
		return false, fmt.Errorf("%w: reliable seq %d of %s refused until seq %d is sent again", ErrBusy, m.Seq, device, d.holdFrom)
	}
	if a.full() {
		if d.holdFrom == 0 {
			d.holdFrom = m.Seq
		}
		d.ackDue = true
		a.metrics.refused.Inc()
		return false, fmt.Errorf("%w: reliable seq %d of %s refused; the box will be asked to send it again", ErrBusy, m.Seq, device)
	}
	d.holdFrom = 0
	d.st.Reliable = m.Seq
	a.add(device, LabelReliable, d, m, data)
	return true, nil
}

func (a *Archive) acceptWave(device string, d *deviceStream, m Message, data []byte) (bool, error) {
	if a.full() {
		// Checked first, so a refused chunk is not remembered as held.
		a.metrics.refused.Inc()
		return false, fmt.Errorf("%w: wave seq %d of %s not kept", ErrBusy, m.Seq, device)
	}
	if !d.waves.accept(m.Seq) {
		a.metrics.duplicates.Inc()
		return false, nil
	}
	d.st.WaveHigh = max(d.st.WaveHigh, m.Seq)
	a.add(device, LabelWave, d, m, data)
	return true, nil
}

// full reports whether the pending batch has reached a bound; a.mu is held.
func (a *Archive) full() bool {
	return len(a.pending) >= a.cfg.MaxPending || a.pendingBytes >= a.cfg.MaxPendingBytes
}

func (a *Archive) add(device, channel string, d *deviceStream, m Message, data []byte) {
	a.pendingBytes += int64(len(data))
	a.pending = append(a.pending, Record{
		Device: device, Channel: channel, Cursor: Cursor{EpochN: d.st.EpochN, Seq: m.Seq},
		BoxTime: m.BoxTime, Data: append([]byte(nil), data...),
	})
	a.states[device] = d.st
	a.metrics.received.WithLabelValues(channel).Inc()
}

// streamLocked returns the device's stream, loading it from the store on first use.
func (a *Archive) streamLocked(device string) (*deviceStream, error) {
	if d, ok := a.devices[device]; ok {
		return d, nil
	}
	st, err := a.cfg.History.Stream(device)
	if err != nil {
		return nil, err
	}
	d := newDeviceStream(st)
	a.devices[device] = d
	return d, nil
}

func newDeviceStream(st StreamState) *deviceStream {
	d := &deviceStream{st: st, durable: st.Reliable}
	// Wave chunks at or below what is held arrived before a restart of the hub: a
	// late one is not worth the risk of storing a duplicate.
	d.waves.floor = st.WaveHigh
	return d
}

// movedAfter is how long a box's stream must have been silent here before a gap in its
// seqs sends the Archive to the store: a box publishes to one hub at a time and takes
// longer than this to move to another and back, while the gaps of a stream that never
// left (messages refused while the store is slow) must not cost a read each.
const movedAfter = time.Second

// catchUpLocked reads a device's stream from the store again when the box may have
// published elsewhere since this Archive last saw it: hubs that share a store each
// remember the streams they saw, and a box that moved to another hub and back comes
// with an epoch or seqs this one has not seen. It returns the stream to use. Nothing
// of the device waiting for a commit here means the box was not here during the last
// flush interval; otherwise what this Archive holds is the newest.
func (a *Archive) catchUpLocked(device string, d *deviceStream) (*deviceStream, error) {
	if _, pending := a.states[device]; pending {
		return d, nil
	}
	st, err := a.cfg.History.Stream(device)
	if err != nil {
		return nil, err
	}
	if st.EpochN < d.st.EpochN || st.EpochN == d.st.EpochN && st.Reliable <= d.st.Reliable && st.WaveHigh <= d.st.WaveHigh {
		return d, nil
	}
	a.log.Info("vitals stream continues from the shared history", "device", device, "epoch", st.Epoch, "n", st.EpochN, "reliable", st.Reliable)
	nd := newDeviceStream(st)
	a.devices[device] = nd
	return nd, nil
}

// Ack returns the ack to send when a device's "vitals" channel opens, so that the box
// skips replaying what the hub already holds; nil when the hub holds nothing of it.
func (a *Archive) Ack(device string) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, err := a.streamLocked(device)
	if err == nil {
		d, err = a.catchUpLocked(device, d)
	}
	if err != nil || d.st.Epoch == "" {
		return nil, err
	}
	return ackMessage(d.st.Epoch, d.durable, false)
}

func ackMessage(epoch string, seq uint64, replay bool) ([]byte, error) {
	m := Message{V: Version, Type: TypeAck, Seq: seq, Epoch: epoch, Replay: replay}
	return Marshal(&m)
}

// Run commits every FlushEvery until ctx ends, then commits what it holds.
func (a *Archive) Run(ctx context.Context) error { return a.RunReporting(ctx, nil) }

// RunReporting is Run that tells report each time commits start failing (with the
// error) and when they succeed again (with nil), so that the hub's status can say its
// vitals history is not being kept, e.g. while a shared database is away.
func (a *Archive) RunReporting(ctx context.Context, report func(error)) error {
	t := time.NewTicker(a.cfg.FlushEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return a.Flush()
		case <-t.C:
			err := a.Flush()
			if err != nil {
				a.log.Error("vitals history not committed; will retry", "err", err)
			}
			if (err != nil) != failing {
				failing = err != nil
				if report != nil {
					report(err)
				}
			}
		}
	}
}

// Flush commits the pending messages in one transaction and sends the acks it allows.
func (a *Archive) Flush() error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.mu.Lock()
	recs, states := a.pending, a.states
	a.pending, a.states, a.pendingBytes = nil, map[string]StreamState{}, 0
	a.mu.Unlock()
	if len(recs) > 0 || len(states) > 0 {
		if err := a.cfg.History.Commit(recs, states); err != nil {
			a.restore(recs, states)
			return err
		}
		a.metrics.commits.Inc()
	}
	type ack struct {
		device string
		data   []byte
	}
	var acks []ack
	a.mu.Lock()
	for _, r := range recs {
		d := a.devices[r.Device]
		if r.Channel == LabelReliable && r.Cursor.EpochN == d.st.EpochN {
			d.durable = max(d.durable, r.Cursor.Seq)
		}
	}
	for device, d := range a.devices {
		if !d.ackDue && d.durable == d.acked {
			continue
		}
		data, err := ackMessage(d.st.Epoch, d.durable, d.holdFrom != 0)
		if err != nil {
			a.log.Error("vitals ack not encoded", "device", device, "err", err)
			continue
		}
		d.ackDue, d.acked = false, d.durable
		acks = append(acks, ack{device, data})
	}
	a.mu.Unlock()
	for _, k := range acks {
		if a.cfg.SendAck != nil {
			a.cfg.SendAck(k.device, k.data)
		}
	}
	return nil
}

// restore puts a batch the store refused back in front of what arrived meanwhile.
func (a *Archive) restore(recs []Record, states map[string]StreamState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending = append(recs, a.pending...)
	for _, r := range recs {
		a.pendingBytes += int64(len(r.Data))
	}
	for device, st := range states {
		if _, newer := a.states[device]; !newer {
			a.states[device] = st
		}
	}
}

// waveWindow remembers the recent wave seqs of a stream: they arrive unordered, so a
// duplicate is recognised within the window and anything older than it is refused.
type waveWindow struct {
	floor uint64 // seqs at or below are refused
	high  uint64
	seen  map[uint64]struct{}
}

const waveWindowSize = 4096

func (w *waveWindow) accept(seq uint64) bool {
	if seq <= w.floor {
		return false
	}
	if _, dup := w.seen[seq]; dup {
		return false
	}
	if w.seen == nil {
		w.seen = make(map[uint64]struct{})
	}
	w.seen[seq] = struct{}{}
	if seq > w.high {
		w.high = seq
		if w.high > waveWindowSize && w.high-waveWindowSize > w.floor {
			w.floor = w.high - waveWindowSize
		}
	}
	if len(w.seen) > 2*waveWindowSize {
		// Forget what fell below the window; done in bulk so each chunk costs O(1).
		for s := range w.seen {
			if s <= w.floor {
				delete(w.seen, s)
			}
		}
	}
	return true
}

type archiveMetrics struct {
	refused, duplicates, commits prometheus.Counter
	received                     *prometheus.CounterVec
}

func (m *archiveMetrics) register(reg prometheus.Registerer) error {
	const p = "lifeline_stream_vitals_archive_"
	m.refused = prometheus.NewCounter(prometheus.CounterOpts{Name: p + "refused_total", Help: "Vitals messages refused (invalid, wrong device or channel, archive busy)."})
	m.duplicates = prometheus.NewCounter(prometheus.CounterOpts{Name: p + "duplicates_total", Help: "Vitals messages already held (replays after a reconnect)."})
	m.commits = prometheus.NewCounter(prometheus.CounterOpts{Name: p + "commits_total", Help: "Group commits of the vitals history."})
	m.received = prometheus.NewCounterVec(prometheus.CounterOpts{Name: p + "received_total", Help: "New vitals messages kept, by channel."}, []string{"channel"})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.refused, m.duplicates, m.commits, m.received} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("vitals: register archive metrics: %w", err)
		}
	}
	return nil
}
