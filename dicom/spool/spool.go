package spool

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"lifeline/dicom"
	"lifeline/internal/durable"
)

// Buckets of the spool's index in the durable store.
const (
	instancesBucket = "dicom-spool/instances" // SOP Instance UID → record
	studiesBucket   = "dicom-spool/studies"   // Study Instance UID → studyRecord
	// pendingBucket holds STUDY "\x00" SOP keys for instances received (or replaced)
	// since their study was last queued. Separate keys keep each commit small even
	// for a study of thousands of instances.
	pendingBucket = "dicom-spool/pending"
)

func pendingKey(study, sop string) []byte { return []byte(pathKey(study) + "\x00" + sop) }

// Config tunes the spool. Zero fields take the defaults in brackets.
type Config struct {
	// QuietPeriod is how long a study must receive nothing before it counts as
	// complete and is queued for forwarding [30 s].
	QuietPeriod time.Duration
	// MinFreeBytes: below this much free space on the spool's file system new
	// instances are refused with "out of resources" [512 MiB].
	MinFreeBytes uint64
	// RetainForwarded is how long a file the hub has confirmed stays on the box, so
	// that it can be looked at or sent again locally [24 h]. Negative: delete at once.
	RetainForwarded time.Duration
}

func (c *Config) defaults() {
	if c.QuietPeriod <= 0 {
		c.QuietPeriod = 30 * time.Second
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = 512 << 20
	}
	if c.RetainForwarded == 0 {
		c.RetainForwarded = 24 * time.Hour
	}
}

// record is an instance's entry in the index: the contract's Instance plus the
// spool's own bookkeeping.
type record struct {
	Instance
	Queued      bool      `json:"queued,omitempty"`
	ForwardedAt time.Time `json:"forwarded_at,omitzero"`
}

// studyRecord tracks a study while it arrives and after it was queued.
type studyRecord struct {
	StudyUID      string    `json:"study_uid"`
	PatientID     string    `json:"patient_id"`
	PatientName   string    `json:"patient_name"`
	Modality      string    `json:"modality"`
	CallingAE     string    `json:"calling_ae"`
	Instances     int       `json:"instances"`
	Bytes         int64     `json:"bytes"`
	FirstReceived time.Time `json:"first_received"`
	LastReceived  time.Time `json:"last_received"`
	// Pending counts the instances received (or replaced) since the study was last
	// queued (keys in pendingBucket); the next Study record carries exactly these.
	Pending  int       `json:"pending,omitempty"`
	QueuedAt time.Time `json:"queued_at,omitzero"`
}

// Spool stores received instances as Part 10 files under one directory, indexes them
// in the durable store, and queues complete studies on ReadyQueue.
//
// Files live at DIR/STUDY/SOP.dcm. A new instance is written into a slot whose name
// is already durable and fsynced with a mark of its digest (one flush); the C-STORE is
// acknowledged then (CommitDurable), and the lander renames it into place and indexes
// it in batches (see slots.go). Where slots cannot be used, and for replacements, a
// file is written as DIR/.partial-*, fsynced, renamed into place, its directory
// fsynced, and indexed before the acknowledgement. Open lands marked slots, removes
// partial files a crash left and indexes committed files the index lacks, so a crash
// anywhere after the acknowledgement loses nothing.
//
// Forwarded instances (see MarkForwarded) are kept for RetainForwarded and then
// deleted; when free space runs short they are deleted oldest first before anything
// is refused. Instances the hub has not confirmed are never deleted.
type Spool struct {
	dir   string
	store *durable.Store
	queue *durable.Queue
	cfg   Config
	log   *slog.Logger

	locks [64]sync.Mutex // by SOP Instance UID: one writer per instance at a time

	mu     sync.Mutex
	dups   uint64
	replac uint64

	// The one-flush path (slots.go): ready slots, and the lander that moves
	// acknowledged instances to their final names and indexes them.
	slotsOn  bool
	lmu      sync.Mutex
	ready    []string            // empty slots whose names are durable
	lq       []*landing          // acknowledged, waiting for the lander
	landing  map[string]*landing // by SOP Instance UID: acknowledged, not yet indexed
	lrunning bool
	closed   bool
	lwg      sync.WaitGroup

	recovered recovery // what Open found
}

// Open opens the spool in dir, recovering from a crash: partial files are removed
// and committed files missing from the index are indexed.
func Open(dir string, store *durable.Store, cfg Config, log *slog.Logger) (*Spool, error) {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", abs, err)
	}
	s := &Spool{dir: abs, store: store, queue: store.Queue(ReadyQueue), cfg: cfg, log: log.With("service", "dicom-spool"),
		landing: map[string]*landing{}}
	if err := s.recover(); err != nil {
		return nil, err
	}
	if err := s.openSlots(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Queue returns the durable queue of ready studies (ReadyQueue).
func (s *Spool) Queue() *durable.Queue { return s.queue }

// FreeBytes returns the space left for unprivileged users on the spool's file system.
func (s *Spool) FreeBytes() (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return 0, fmt.Errorf("spool: statfs %s: %w", s.dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// checkUIDs refuses, as dicom.ErrSOPMismatch (0xA900), UIDs that are not UIDs
// (PS3.5 9.1: at most 64 characters, digits in components without leading zeros,
// dots between). Such an instance could not be indexed (a 40,000-character key is
// beyond the store) or forwarded (the hub refuses it), so the box must not acknowledge
// it. An empty optional UID (the series, say) is left to the walker's checks.
func checkUIDs(where string, uids ...string) error {
	for i, uid := range uids {
		if uid == "" && i > 0 {
			continue
		}
		if !dicom.ValidUID(uid) {
			shown := uid
			if len(shown) > 80 {
				shown = fmt.Sprintf("%s… (%d bytes)", shown[:80], len(uid))
			}
			return fmt.Errorf("%w: %s carries %q, which is not a valid UID", dicom.ErrSOPMismatch, where, shown)
		}
	}
	return nil
}

// pathKey turns a UID into a safe file name: valid UIDs as they are, anything else
// (a hostile "../", say) as a digest.
func pathKey(uid string) string {
	if dicom.ValidUID(uid) {
		return uid
	}
	sum := sha256.Sum256([]byte(uid))
	return "x" + hex.EncodeToString(sum[:16])
}

func (s *Spool) lock(sop string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(sop))
	return &s.locks[h.Sum32()%uint32(len(s.locks))]
}

// Begin starts receiving an instance. It refuses with dicom.ErrOutOfResources when
// free space is below MinFreeBytes even after deleting forwarded files.
func (s *Spool) Begin(in dicom.Incoming) (dicom.InstanceWriter, error) {
	if err := checkUIDs("request", in.SOPClassUID, in.SOPInstanceUID, ""); err != nil {
		return nil, err
	}
	if err := s.ensureSpace(); err != nil {
		return nil, err
	}
	var f *os.File
	slot := s.takeSlot()
	if slot != "" {
		var err error
		if f, err = os.OpenFile(slot, os.O_RDWR, 0); err != nil {
			os.Remove(slot)
			slot = ""
		}
	}
	if slot == "" {
		var err error
		if f, err = os.CreateTemp(s.dir, ".partial-*"); err != nil {
			return nil, fmt.Errorf("spool: create temporary file: %w", err)
		}
	}
	w := &writer{s: s, in: in, f: f, h: sha256.New(), slot: slot != ""}
	meta := dicom.EncodeMeta(dicom.Meta{SOPClassUID: in.SOPClassUID, SOPInstanceUID: in.SOPInstanceUID,
		TransferSyntaxUID: in.TransferSyntaxUID})
	w.metaLen = int64(len(meta))
	if _, err := w.Write(meta); err != nil {
		w.Abort()
		return nil, w.err
	}
	return w, nil
}

func (s *Spool) ensureSpace() error {
	free, err := s.FreeBytes()
	if err != nil {
		return err
	}
	if free >= s.cfg.MinFreeBytes {
		return nil
	}
	if n, _ := s.prune(time.Now(), true); n > 0 {
		if free, err = s.FreeBytes(); err == nil && free >= s.cfg.MinFreeBytes {
			return nil
		}
	}
	return fmt.Errorf("%w: %d bytes free in %s, %d required", dicom.ErrOutOfResources, free, s.dir, s.cfg.MinFreeBytes)
}

// writer receives one instance into a temporary file, hashing as it goes.
type writer struct {
	s       *Spool
	in      dicom.Incoming
	f       *os.File
	h       hash.Hash
	n       int64
	metaLen int64
	flushed int64 // bytes handed to writeback so far
	slot    bool  // f is a slot: a new instance can be made durable with one flush
	err     error
	done    bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if w.n-w.flushed >= writebackChunk {
		// Start writing back what has arrived so that Commit's fsync finds little
		// left to do.
		startWriteback(w.f, w.flushed, w.n-w.flushed)
		w.flushed = w.n
	}
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w: %w", dicom.ErrOutOfResources, err)
		}
		w.err = fmt.Errorf("spool: write %s: %w", w.f.Name(), err)
	}
	return n, w.err
}

func (w *writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// Commit checks the data set, makes the file durable under its final name and
// indexes it. A re-sent instance with identical bytes is acknowledged without
// storing it twice; different bytes replace the stored file.
func (w *writer) Commit() error {
	_, err := w.commit(false)
	return err
}

// CommitDurable is Commit for the C-STORE SCP: it returns once the instance's bytes
// and the name they can be found under after a crash are durable, which for a new
// instance is one fsync of its slot. Its rename into place and its index entry follow
// within milliseconds, batched with other instances' (see slots.go); Open completes
// them after a crash. Commit, for callers that act on the index at once (a study made
// on the box and completed right away), keeps the former path.
func (w *writer) CommitDurable() error {
	_, err := w.commit(true)
	return err
}

// commit checks the data set and stores it; a non-nil landing is still to be indexed.
func (w *writer) commit(durableOnly bool) (*landing, error) {
	if w.done {
		return nil, errors.New("spool: instance already committed or aborted")
	}
	if w.err != nil {
		w.Abort()
		return nil, w.err
	}
	info, err := dicom.ReadInfo(io.NewSectionReader(w.f, w.metaLen, w.n-w.metaLen), w.in.TransferSyntaxUID)
	if err != nil {
		w.Abort()
		return nil, err
	}
	if info.SOPClassUID != w.in.SOPClassUID || info.SOPInstanceUID != w.in.SOPInstanceUID {
		w.Abort()
		return nil, fmt.Errorf("%w: data set has SOP class %s instance %s, request said %s / %s", dicom.ErrSOPMismatch,
			info.SOPClassUID, info.SOPInstanceUID, w.in.SOPClassUID, w.in.SOPInstanceUID)
	}
	if info.StudyUID == "" {
		w.Abort()
		return nil, fmt.Errorf("%w: data set has no Study Instance UID", dicom.ErrSOPMismatch)
	}
	if err := checkUIDs("data set", info.SOPClassUID, info.StudyUID, info.SeriesUID); err != nil {
		w.Abort()
		return nil, err
	}
	sum := hex.EncodeToString(w.h.Sum(nil))
	inst := Instance{SOPInstanceUID: info.SOPInstanceUID, SOPClassUID: info.SOPClassUID, StudyUID: info.StudyUID,
		SeriesUID: info.SeriesUID, TransferSyntax: w.in.TransferSyntaxUID, PatientID: info.PatientID,
		PatientName: info.PatientName, Modality: info.Modality, CallingAE: w.in.CallingAE, Size: w.n, SHA256: sum,
		ReceivedAt: time.Now().UTC(),
		Path:       filepath.Join(w.s.dir, pathKey(info.StudyUID), pathKey(info.SOPInstanceUID)+".dcm")}
	return w.s.commit(w, inst, durableOnly)
}

func (s *Spool) commit(w *writer, inst Instance, durableOnly bool) (*landing, error) {
	l := s.lock(inst.SOPInstanceUID)
	l.Lock()
	defer l.Unlock()
	old, hadOld, landing, err := s.lookup(inst.SOPInstanceUID)
	if err != nil {
		w.Abort()
		return nil, err
	}
	if hadOld && old.SHA256 == inst.SHA256 {
		if _, err := os.Stat(old.Path); err == nil || landing != nil {
			w.Abort()
			if landing != nil && !durableOnly {
				<-landing.done // Commit promises an indexed instance, not only a durable one
			}
			s.mu.Lock()
			s.dups++
			s.mu.Unlock()
			s.log.Info("instance received again with identical bytes; kept the stored copy",
				"sop_instance_uid", inst.SOPInstanceUID, "calling_ae", inst.CallingAE)
			return nil, nil
		}
	}
	if landing != nil {
		// Different bytes for an instance still landing: let it land, so that the
		// replacement below sees (and replaces) its index entry.
		<-landing.done
		if old, hadOld, _, err = s.lookup(inst.SOPInstanceUID); err != nil {
			w.Abort()
			return nil, err
		}
	}
	w.done = true
	if !hadOld && w.slot && durableOnly {
		ld, err := s.commitSlot(w, inst)
		if err == nil {
			return ld, nil
		}
		if _, serr := os.Stat(w.f.Name()); serr != nil {
			return nil, err // the fsync failed: the slot is gone
		}
		// No mark (a file system out of space for it, say): the former path.
		s.log.Warn("cannot mark the slot; storing this instance the slower way", "err", err)
	}
	if !hadOld {
		return nil, s.commitNew(w, inst)
	}
	return nil, s.replace(w, inst, old)
}

// lookup returns what the spool holds for a SOP Instance UID: the index entry, or the
// landing of an acknowledged instance not yet indexed.
func (s *Spool) lookup(sop string) (record, bool, *landing, error) {
	if l := s.landed(sop); l != nil {
		return record{Instance: l.inst}, true, l, nil
	}
	var old record
	switch err := s.store.GetJSON(instancesBucket, sop, &old); {
	case err == nil:
		return old, true, nil, nil
	case errors.Is(err, durable.ErrNotFound):
		return record{}, false, nil, nil
	default:
		return record{}, false, nil, fmt.Errorf("spool: read index: %w", err)
	}
}

// index records inst and adds it to its study's pending list in one transaction.
func (s *Spool) index(inst Instance, old record, hadOld bool) error {
	return s.store.Update(func(tx *durable.Tx) error { return indexTx(tx, inst, old, hadOld) })
}

func indexTx(tx *durable.Tx, inst Instance, old record, hadOld bool) error {
	ib, err := durable.Bucket(tx, instancesBucket)
	if err != nil {
		return err
	}
	sb, err := durable.Bucket(tx, studiesBucket)
	if err != nil {
		return err
	}
	data, err := json.Marshal(record{Instance: inst})
	if err != nil {
		return err
	}
	if err := ib.Put([]byte(inst.SOPInstanceUID), data); err != nil {
		return err
	}
	var st studyRecord
	if v := sb.Get([]byte(inst.StudyUID)); v != nil {
		if err := json.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("spool: study %s index entry: %w", inst.StudyUID, err)
		}
	} else {
		st = studyRecord{StudyUID: inst.StudyUID, PatientID: inst.PatientID, PatientName: inst.PatientName,
			Modality: inst.Modality, CallingAE: inst.CallingAE, FirstReceived: inst.ReceivedAt}
	}
	if hadOld && old.StudyUID == inst.StudyUID {
		st.Bytes += inst.Size - old.Size
	} else {
		st.Instances++
		st.Bytes += inst.Size
	}
	st.LastReceived = inst.ReceivedAt
	pb, err := durable.Bucket(tx, pendingBucket)
	if err != nil {
		return err
	}
	if k := pendingKey(inst.StudyUID, inst.SOPInstanceUID); pb.Get(k) == nil {
		if err := pb.Put(k, []byte{1}); err != nil {
			return err
		}
		st.Pending++
	}
	sdata, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return sb.Put([]byte(inst.StudyUID), sdata)
}

// Instance returns the indexed instance with the given SOP Instance UID. An instance
// acknowledged and not yet indexed is waited for (milliseconds, see slots.go).
func (s *Spool) Instance(sopInstanceUID string) (Instance, error) {
	if l := s.landed(sopInstanceUID); l != nil {
		<-l.done
	}
	var r record
	if err := s.store.GetJSON(instancesBucket, sopInstanceUID, &r); err != nil {
		return Instance{}, err
	}
	return r.Instance, nil
}

// Instances calls fn for every indexed instance, after those acknowledged before the
// call are indexed (Settle).
func (s *Spool) Instances(fn func(Instance) error) error {
	s.Settle()
	return s.store.ForEach(instancesBucket, func(_, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		return fn(r.Instance)
	})
}
