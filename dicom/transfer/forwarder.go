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

// PendingSource lists the instances that are durable on the box but whose study is
// not declared complete yet (not on the ready queue). When the Releaser given to
// NewForwarder is one (as *spool.Spool is), each such instance goes upstream at once,
// while the modality still sends; the manifest, receipt and release wait for the
// study to be queued. skip leaves out SOP Instance UIDs the forwarder already tracks.
type PendingSource interface {
	PendingInstances(skip func(sopInstanceUID string) bool) ([]spool.Instance, error)
}

// batchReleaser releases many instances in one commit; *spool.Spool is one.
type batchReleaser interface {
	MarkForwardedAll(sopInstanceUIDs []string) error
}

// ForwarderConfig configures the box's side of the transfer.
type ForwarderConfig struct {
	// Hub is the box's route among several addresses of its hub; it is asked for
	// the address before each request. Nil means HubURL alone.
	Hub HubRoute
	// HubURL is https://host:port of the hub, when the box knows one address.
	HubURL string
	// ChunkSize is the uncompressed bytes per append; zero means 512 KiB. A chunk cut
	// by an outage is sent again whole, so smaller chunks re-send less.
	ChunkSize int
	// Parallel is how many instances are in flight at once; zero means 6.
	Parallel int
	// Connections is how many QUIC connections carry them; zero means 3. Each has
	// its own congestion window, so a random loss on a radio link halves a third of
	// the sending rate, not all of it: through an emulated 20 Mbit/s, 0.1 % loss link
	// one connection carries about 70 %, two about 98 %; at 3 Mbit/s and 1 % loss
	// one carries about 63 %, three 97 %.
	Connections int
	// Priorities order studies; nil means DefaultPriorityRules.
	Priorities []PriorityRule
	// BandwidthCap limits the wire rate in bits per second from the start; zero is
	// unlimited. SetBandwidthCap changes it at run time.
	BandwidthCap int64
	// NoCompression turns zstd off even for uncompressed transfer syntaxes.
	NoCompression bool
	// RetryMin and RetryMax bound the back-off after failures; zero means 500 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// IdleTimeout is how long a silent QUIC connection lives, and how long a TCP
	// one may leave data unacknowledged; zero means 10 s.
	IdleTimeout time.Duration
	// QUICRetry is how often the box tries QUIC again while UDP to the hub seemed
	// blocked and uploads go over HTTPS on TCP; zero means a minute.
	QUICRetry time.Duration
	// PollInterval is how often the ready queue and the spool's pending instances
	// are read; zero means 250 ms, so that an instance goes upstream within a
	// quarter second of being durable on the box.
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
	SHA256         string    `json:"sha256,omitempty"` // of the bytes this state is about
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
	pend   PendingSource // nil: only queued studies are sent
	log    *slog.Logger
	client *client
	limit  *limiter
	wake   chan struct{}

	mu      sync.Mutex
	studies map[uint64]*studyJob // queued studies by ready-queue sequence
	// receiving holds, by Study Instance UID, the instances of studies still
	// arriving (not queued yet); early indexes the same jobs by SOP Instance UID
	// until a queued study adopts them.
	receiving map[string]*studyJob
	early     map[string]*instJob
	state     string
	lastErr   string
	pausedTo  time.Time // whole forwarder backs off (hub unreachable or refusing)
	failures  int

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
		cfg.Parallel = 6
	}
	if cfg.Connections <= 0 {
		cfg.Connections = 3
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
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.MaxDigestFailures <= 0 {
		cfg.MaxDigestFailures = 3
	}
	lim := &limiter{}
	lim.setBitsPerSecond(cfg.BandwidthCap)
	if cfg.Hub == nil {
		cfg.Hub = oneHub(cfg.HubURL)
	}
	c, err := newRoutedClient(clientConfig{route: cfg.Hub, tls: tlsConf, idle: cfg.IdleTimeout, conns: cfg.Connections,
		limit: lim, log: log, quicRetry: cfg.QUICRetry})
	if err != nil {
		return nil, err
	}
	f := &Forwarder{cfg: cfg, store: store, queue: store.Queue(spool.ReadyQueue), rel: rel, log: log, client: c,
		limit: lim, wake: make(chan struct{}, 1), studies: map[uint64]*studyJob{}, state: "idle",
		receiving: map[string]*studyJob{}, early: map[string]*instJob{}}
	if ps, ok := rel.(PendingSource); ok {
		f.pend = ps
	}
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
	for _, sj := range f.all() {
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

// refresh reads the ready queue and adds studies the forwarder does not track yet,
// then the spool's pending instances (see PendingSource).
func (f *Forwarder) refresh() error {
	items, err := f.queue.Peek(0)
	if err != nil {
		return fmt.Errorf("read ready queue: %w", err)
	}
	var release []string
	f.mu.Lock()
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
		sj := &studyJob{seq: it.Seq, study: st, prio: priorityOf(f.cfg.Priorities, &st), state: studySync, added: time.Now(),
			lastStored: -1}
		for _, in := range st.Instances {
			ij, err := f.adopt(sj, in)
			if err != nil {
				f.mu.Unlock()
				return err
			}
			switch ij.state {
			case instDone:
				release = append(release, in.SOPInstanceUID)
			case instInflight:
				// Sent while the study arrived: the manifest follows once it lands.
				sj.state = studySending
			}
		}
		f.studies[it.Seq] = sj
		f.log.Info("transfer: study queued for the hub", "study", st.StudyUID, "instances", len(st.Instances),
			"bytes", sj.bytesTotal, "already_sent", len(release), "priority", sj.prio.String())
	}
	f.mu.Unlock()
	f.release(release)
	return f.refreshPending()
}

// adopt gives a queued study its job for one instance: the one that was sending it
// while the study arrived, or a new one from the box's durable state.
func (f *Forwarder) adopt(sj *studyJob, in spool.Instance) (*instJob, error) {
	sop := in.SOPInstanceUID
	if e := f.early[sop]; e != nil {
		f.leaveReceiving(e)
		if e.inst.SHA256 == in.SHA256 {
			e.study = sj
			sj.inst = append(sj.inst, e)
			sj.bytesTotal += in.Size
			sj.bytesDone += e.confirmed
			return e, nil
		}
		// The modality replaced the instance since: its old upload may finish, but
		// it no longer counts, and the new bytes wait for it (see dispatch).
		if e.state == instInflight {
			e.superseded = true
			f.early[sop] = e
		}
	}
	ij, err := f.newInstJob(sj, in)
	if err != nil {
		return nil, err
	}
	sj.inst = append(sj.inst, ij)
	sj.bytesTotal += in.Size
	sj.bytesDone += ij.confirmed
	return ij, nil
}

// newInstJob makes an instance's job from what the box's store says of it.
func (f *Forwarder) newInstJob(sj *studyJob, in spool.Instance) (*instJob, error) {
	ij := &instJob{study: sj, inst: in}
	bi, err := f.loadBox(in.SOPInstanceUID)
	if err != nil {
		return nil, err
	}
	if bi.SHA256 != "" && bi.SHA256 != in.SHA256 {
		return ij, nil // state about other bytes of the same UID: start afresh
	}
	switch {
	case bi.Done:
		ij.state, ij.confirmed = instDone, in.Size
	case bi.Dead:
		ij.state, ij.reason = instDead, bi.DeadReason
	default:
		ij.confirmed = bi.Offset
	}
	return ij, nil
}

// leaveReceiving takes an early job out of its arriving study and the early index.
func (f *Forwarder) leaveReceiving(ij *instJob) {
	sop := ij.inst.SOPInstanceUID
	delete(f.early, sop)
	sj := ij.study
	if sj == nil || sj.state != studyReceiving {
		return
	}
	for i, x := range sj.inst {
		if x == ij {
			sj.inst = append(sj.inst[:i], sj.inst[i+1:]...)
			break
		}
	}
	sj.bytesTotal -= ij.inst.Size
	sj.bytesDone -= ij.confirmed
	if len(sj.inst) == 0 {
		delete(f.receiving, sj.study.StudyUID)
	}
}

// refreshPending starts tracking instances that are durable in the spool but whose
// study is still arriving.
func (f *Forwarder) refreshPending() error {
	if f.pend == nil {
		return nil
	}
	f.mu.Lock()
	known := make(map[string]bool, len(f.early))
	for _, sj := range f.all() {
		for _, ij := range sj.inst {
			known[ij.inst.SOPInstanceUID] = true
		}
	}
	for sop := range f.early {
		known[sop] = true
	}
	f.mu.Unlock()
	insts, err := f.pend.PendingInstances(func(sop string) bool { return known[sop] })
	if err != nil || len(insts) == 0 {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range insts {
		if f.early[in.SOPInstanceUID] != nil || ValidUID(in.StudyUID) != nil {
			continue
		}
		sj := f.receiving[in.StudyUID]
		if sj == nil {
			st := spool.Study{StudyUID: in.StudyUID, PatientID: in.PatientID, PatientName: in.PatientName,
				Modality: in.Modality, CallingAE: in.CallingAE}
			sj = &studyJob{study: st, prio: priorityOf(f.cfg.Priorities, &st), state: studyReceiving, added: time.Now(), lastStored: -1}
			f.receiving[in.StudyUID] = sj
			f.log.Info("transfer: study arriving; forwarding its instances as they come", "study", in.StudyUID,
				"priority", sj.prio.String())
		}
		ij, err := f.newInstJob(sj, in)
		if err != nil {
			return err
		}
		sj.inst = append(sj.inst, ij)
		sj.bytesTotal += in.Size
		sj.bytesDone += ij.confirmed
		f.early[in.SOPInstanceUID] = ij
	}
	return nil
}

// release tells the spool the hub holds these instances.
func (f *Forwarder) release(sops []string) {
	if f.rel == nil || len(sops) == 0 {
		return
	}
	if br, ok := f.rel.(batchReleaser); ok {
		if err := br.MarkForwardedAll(sops); err != nil {
			f.log.Warn("transfer: spool could not release forwarded instances", "count", len(sops), "err", err)
		}
		return
	}
	for _, sop := range sops {
		if err := f.rel.MarkForwarded(sop); err != nil {
			f.log.Warn("transfer: spool could not release a forwarded instance", "sop", sop, "err", err)
		}
	}
}

// all returns every tracked study: queued and still arriving.
func (f *Forwarder) all() []*studyJob {
	out := make([]*studyJob, 0, len(f.studies)+len(f.receiving))
	for _, sj := range f.studies {
		out = append(out, sj)
	}
	for _, sj := range f.receiving {
		out = append(out, sj)
	}
	return out
}

// ordered returns tracked studies by priority, then queued before arriving, then
// queue order (arrival order for those still arriving).
func (f *Forwarder) ordered() []*studyJob {
	out := f.all()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.prio != b.prio {
			return a.prio < b.prio
		}
		if ra, rb := a.state == studyReceiving, b.state == studyReceiving; ra != rb {
			return rb
		}
		if a.seq != b.seq {
			return a.seq < b.seq
		}
		return a.added.Before(b.added)
	})
	return out
}
