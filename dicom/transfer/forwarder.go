package transfer

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/dicom/spool"
	"lifeline/internal/durable"
)

// Releaser is told when the hub durably holds an instance, so the spool may free
// its file. *spool.Spool implements it.
type Releaser interface {
	MarkForwarded(sopInstanceUID string) error
}

// ForwarderConfig configures the box's side of the transfer.
type ForwarderConfig struct {
	HubURL string // https://host:port of the hub
	// ChunkSize is the uncompressed bytes per append; zero means 512 KiB. A chunk cut
	// by an outage is sent again whole, so smaller chunks re-send less.
	ChunkSize int
	// Parallel is how many instances are in flight at once on the one connection;
	// zero means 4.
	Parallel int
	// Priorities order studies; nil means DefaultPriorityRules.
	Priorities []PriorityRule
	// BandwidthCap limits the wire rate in bits per second from the start; zero is
	// unlimited. SetBandwidthCap changes it at run time.
	BandwidthCap int64
	// NoCompression turns zstd off even for uncompressed transfer syntaxes.
	NoCompression bool
	// RetryMin and RetryMax bound the back-off after failures; zero means 500 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// IdleTimeout is how long a silent QUIC connection lives; zero means 10 s.
	IdleTimeout time.Duration
	// PollInterval is how often the ready queue is read; zero means 1 s.
	PollInterval time.Duration
	// MaxDigestFailures is how often the hub may find a whole instance corrupt before
	// it is dead-lettered; zero means 3.
	MaxDigestFailures int
}

// Buckets of the box's durable store.
const (
	bucketBoxInstances = "forward/instances" // SOP Instance UID → boxInstance
)

// boxInstance is the box's durable state of one instance's upload.
type boxInstance struct {
	StudyUID       string    `json:"study_uid"`
	URL            string    `json:"url,omitempty"`
	Offset         int64     `json:"offset"` // last offset the hub confirmed
	Done           bool      `json:"done,omitempty"`
	Dead           bool      `json:"dead,omitempty"`
	DeadReason     string    `json:"dead_reason,omitempty"`
	DeadAt         time.Time `json:"dead_at,omitzero"`
	DigestFailures int       `json:"digest_failures,omitempty"`
}

// Forwarder drains the spool's ready queue to the hub.
type Forwarder struct {
	cfg    ForwarderConfig
	store  *durable.Store
	queue  *durable.Queue
	rel    Releaser
	log    *slog.Logger
	client *client
	limit  *limiter
	wake   chan struct{}

	mu       sync.Mutex
	studies  map[uint64]*studyJob
	state    string
	lastErr  string
	pausedTo time.Time // whole forwarder backs off (hub unreachable or refusing)
	failures int

	wireBytes, resent, restartsFromZero atomic.Int64
	m                                   forwardMetrics
}

type forwardMetrics struct {
	wire, resent, restarts, chunks prometheus.Counter
	instances, studies, dead       prometheus.Counter
	queued                         prometheus.Gauge
}

// NewForwarder makes the box's forwarder. tlsConf carries the box's certificate and
// the hub's authority; rel may be nil; reg may be nil.
func NewForwarder(cfg ForwarderConfig, store *durable.Store, rel Releaser, tlsConf *tls.Config, log *slog.Logger, reg prometheus.Registerer) (*Forwarder, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 512 << 10
	}
	if cfg.ChunkSize > MaxChunk {
		return nil, fmt.Errorf("transfer: chunk size %d exceeds the protocol's %d", cfg.ChunkSize, MaxChunk)
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.Priorities == nil {
		cfg.Priorities = DefaultPriorityRules
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 500 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MaxDigestFailures <= 0 {
		cfg.MaxDigestFailures = 3
	}
	lim := &limiter{}
	lim.setBitsPerSecond(cfg.BandwidthCap)
	c, err := newClient(cfg.HubURL, tlsConf, cfg.IdleTimeout, lim)
	if err != nil {
		return nil, err
	}
	f := &Forwarder{cfg: cfg, store: store, queue: store.Queue(spool.ReadyQueue), rel: rel, log: log, client: c,
		limit: lim, wake: make(chan struct{}, 1), studies: map[uint64]*studyJob{}, state: "idle"}
	f.m = forwardMetrics{
		wire: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_forward_wire_bytes_total",
			Help: "Chunk bytes sent to the hub as they went on the wire (after zstd)."}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_forward_resent_bytes_total",
			Help: "Wire bytes the hub did not keep (cut by an outage or corrupt) and that were sent again."}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_forward_restarts_from_zero_total",
			Help: "Uploads the hub had lost and that started again from byte 0."}),
		chunks: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_forward_chunks_total",
			Help: "Chunks the hub acknowledged."}),
		instances: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_forward_instances_total",
			Help: "Instances the hub verified and holds."}),
		studies: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_forward_studies_total",
			Help: "Studies the hub confirmed whole, removed from the queue."}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_forward_dead_letters_total",
			Help: "Instances the hub refused, put on the dead-letter list."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lifeline_forward_queued_studies",
			Help: "Studies waiting in the ready queue or being forwarded."}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{f.m.wire, f.m.resent, f.m.restarts, f.m.chunks, f.m.instances, f.m.studies, f.m.dead, f.m.queued} {
			if err := reg.Register(col); err != nil {
				c.close()
				return nil, fmt.Errorf("transfer: register forwarder metrics: %w", err)
			}
		}
	}
	return f, nil
}

// SetBandwidthCap limits the forwarder's wire rate in bits per second from now on;
// zero removes the cap. The live streamer calls it when it needs the uplink.
func (f *Forwarder) SetBandwidthCap(bitsPerSecond int64) {
	if bitsPerSecond < 0 {
		bitsPerSecond = 0
	}
	f.limit.setBitsPerSecond(bitsPerSecond)
	f.log.Info("transfer: bandwidth cap changed", "bits_per_second", bitsPerSecond)
}

// Notify tells the forwarder that the ready queue changed, so it need not wait for
// its next poll.
func (f *Forwarder) Notify() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// ErrNotDeadLettered is returned by Retry for an instance that is not on the
// dead-letter list: never refused, already retried, or unknown to the box.
var ErrNotDeadLettered = errors.New("not on the dead-letter list")

// Retry takes an instance off the dead-letter list so that it is sent again from its
// first byte, and unblocks its study. It is the operator's answer to a refusal whose
// cause was fixed (the hub's limit raised, the spool's disk remounted); an instance
// still at fault is dead-lettered again with the new reason.
func (f *Forwarder) Retry(sopInstanceUID string) error {
	var was boxInstance
	err := f.store.Update(func(tx *durable.Tx) error {
		var bi boxInstance
		found, err := durable.GetJSONTx(tx, bucketBoxInstances, sopInstanceUID, &bi)
		if err != nil {
			return err
		}
		if !found || !bi.Dead {
			return fmt.Errorf("transfer: retry %s: %w", sopInstanceUID, ErrNotDeadLettered)
		}
		was = bi
		bi.Dead, bi.DeadReason, bi.DeadAt, bi.DigestFailures, bi.URL, bi.Offset = false, "", time.Time{}, 0, "", 0
		return durable.PutJSONTx(tx, bucketBoxInstances, sopInstanceUID, bi)
	})
	if err != nil {
		return err
	}
	f.mu.Lock()
	for _, sj := range f.studies {
		for _, ij := range sj.inst {
			if ij.inst.SOPInstanceUID == sopInstanceUID && ij.state == instDead {
				ij.state, ij.reason, ij.attempts, ij.nextTry = instPending, "", 0, time.Time{}
				if sj.state == studyBlocked {
					sj.state, sj.reason = studySending, ""
				}
			}
		}
	}
	f.mu.Unlock()
	f.log.Info("transfer: dead-lettered instance retried by an operator", "study", was.StudyUID, "sop", sopInstanceUID,
		"refused_for", was.DeadReason, "refused_at", was.DeadAt)
	f.Notify()
	return nil
}

// Close releases the connection to the hub. Call it after Run returned.
func (f *Forwarder) Close() { f.client.close() }

func (f *Forwarder) loadBox(sop string) (boxInstance, error) {
	var bi boxInstance
	err := f.store.GetJSON(bucketBoxInstances, sop, &bi)
	if errors.Is(err, durable.ErrNotFound) {
		return boxInstance{}, nil
	}
	return bi, err
}

func (f *Forwarder) saveBox(sop string, bi boxInstance) error {
	return f.store.PutJSON(bucketBoxInstances, sop, bi)
}

// refresh reads the ready queue and adds studies the forwarder does not track yet.
func (f *Forwarder) refresh() error {
	items, err := f.queue.Peek(0)
	if err != nil {
		return fmt.Errorf("read ready queue: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m.queued.Set(float64(len(items)))
	for _, it := range items {
		if _, ok := f.studies[it.Seq]; ok {
			continue
		}
		var st spool.Study
		if err := json.Unmarshal(it.Value, &st); err != nil || ValidUID(st.StudyUID) != nil || len(st.Instances) == 0 {
			// A record we cannot read would block nothing else, but must stay visible.
			f.log.Error("transfer: unreadable study in the ready queue; left in place", "seq", it.Seq, "err", err, "study", st.StudyUID)
			f.studies[it.Seq] = &studyJob{seq: it.Seq, study: st, state: studyBlocked, reason: "unreadable queue record"}
			continue
		}
		sj := &studyJob{seq: it.Seq, study: st, prio: priorityOf(f.cfg.Priorities, &st), state: studySync, added: time.Now()}
		for i := range st.Instances {
			in := st.Instances[i]
			ij := &instJob{study: sj, inst: in}
			sj.bytesTotal += in.Size
			bi, err := f.loadBox(in.SOPInstanceUID)
			if err != nil {
				return err
			}
			switch {
			case bi.Done:
				ij.state = instDone
				sj.bytesDone += in.Size
			case bi.Dead:
				ij.state, ij.reason = instDead, bi.DeadReason
			default:
				sj.bytesDone += bi.Offset
			}
			sj.inst = append(sj.inst, ij)
		}
		f.studies[it.Seq] = sj
		f.log.Info("transfer: study queued for the hub", "study", st.StudyUID, "instances", len(st.Instances),
			"bytes", sj.bytesTotal, "priority", sj.prio.String())
	}
	return nil
}

// ordered returns tracked studies by priority, then queue order.
func (f *Forwarder) ordered() []*studyJob {
	out := make([]*studyJob, 0, len(f.studies))
	for _, sj := range f.studies {
		out = append(out, sj)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].prio != out[j].prio {
			return out[i].prio < out[j].prio
		}
		return out[i].seq < out[j].seq
	})
	return out
}
