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
// Files live at DIR/STUDY/SOP.dcm. A file is written as DIR/.partial-*, fsynced,
// renamed into place, its directory fsynced, and only then indexed; the C-STORE is
// acknowledged after that. Open removes partial files a crash left and indexes
// committed files the index lacks, so a crash between rename and index loses nothing.
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
	s := &Spool{dir: abs, store: store, queue: store.Queue(ReadyQueue), cfg: cfg, log: log.With("service", "dicom-spool")}
	if err := s.recover(); err != nil {
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
	if err := s.ensureSpace(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.dir, ".partial-*")
	if err != nil {
		return nil, fmt.Errorf("spool: create temporary file: %w", err)
	}
	w := &writer{s: s, in: in, f: f, h: sha256.New()}
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
	if w.done {
		return errors.New("spool: instance already committed or aborted")
	}
	if w.err != nil {
		w.Abort()
		return w.err
	}
	info, err := dicom.ReadInfo(io.NewSectionReader(w.f, w.metaLen, w.n-w.metaLen), w.in.TransferSyntaxUID)
	if err != nil {
		w.Abort()
		return err
	}
	if info.SOPClassUID != w.in.SOPClassUID || info.SOPInstanceUID != w.in.SOPInstanceUID {
		w.Abort()
		return fmt.Errorf("%w: data set has SOP class %s instance %s, request said %s / %s", dicom.ErrSOPMismatch,
			info.SOPClassUID, info.SOPInstanceUID, w.in.SOPClassUID, w.in.SOPInstanceUID)
	}
	if info.StudyUID == "" {
		w.Abort()
		return fmt.Errorf("%w: data set has no Study Instance UID", dicom.ErrSOPMismatch)
	}
	sum := hex.EncodeToString(w.h.Sum(nil))
	inst := Instance{SOPInstanceUID: info.SOPInstanceUID, SOPClassUID: info.SOPClassUID, StudyUID: info.StudyUID,
		SeriesUID: info.SeriesUID, TransferSyntax: w.in.TransferSyntaxUID, PatientID: info.PatientID,
		PatientName: info.PatientName, Modality: info.Modality, CallingAE: w.in.CallingAE, Size: w.n, SHA256: sum,
		ReceivedAt: time.Now().UTC(),
		Path:       filepath.Join(w.s.dir, pathKey(info.StudyUID), pathKey(info.SOPInstanceUID)+".dcm")}
	return w.s.commit(w, inst)
}

func (s *Spool) commit(w *writer, inst Instance) error {
	l := s.lock(inst.SOPInstanceUID)
	l.Lock()
	defer l.Unlock()
	var old record
	hadOld := false
	switch err := s.store.GetJSON(instancesBucket, inst.SOPInstanceUID, &old); {
	case err == nil:
		hadOld = true
	case !errors.Is(err, durable.ErrNotFound):
		w.Abort()
		return fmt.Errorf("spool: read index: %w", err)
	}
	if hadOld && old.SHA256 == inst.SHA256 {
		if _, err := os.Stat(old.Path); err == nil {
			w.Abort()
			s.mu.Lock()
			s.dups++
			s.mu.Unlock()
			s.log.Info("instance received again with identical bytes; kept the stored copy",
				"sop_instance_uid", inst.SOPInstanceUID, "calling_ae", inst.CallingAE)
			return nil
		}
	}
	w.done = true
	if !hadOld {
		// A new instance: commit its index entry while the file is made durable;
		// the C-STORE is acknowledged only after both. A crash in between leaves
		// an entry without a file (dropped by Open) or a file without an entry
		// (indexed by Open); neither was acknowledged, so nothing is lost.
		idx := make(chan error, 1)
		go func() { idx <- s.index(inst, old, false) }()
		ferr := s.persist(w, inst.Path)
		ierr := <-idx
		if ferr != nil {
			if ierr == nil {
				s.dropInstance(record{Instance: inst})
			}
			return ferr
		}
		return ierr
	}
	// A replacement goes file first, index second, so that the index never
	// describes bytes that a crash could take back.
	if err := s.persist(w, inst.Path); err != nil {
		return err
	}
	if err := s.index(inst, old, hadOld); err != nil {
		// The file is durable but not indexed: the sender gets a failure and sends
		// again, and Open would index the file after a crash.
		return err
	}
	s.mu.Lock()
	s.replac++
	s.mu.Unlock()
	s.log.Warn("instance received again with different bytes; replaced the stored copy",
		"sop_instance_uid", inst.SOPInstanceUID, "old_sha256", old.SHA256, "new_sha256", inst.SHA256,
		"calling_ae", inst.CallingAE)
	if old.Path != inst.Path {
		os.Remove(old.Path)
	}
	return nil
}

// persist fsyncs the temporary file and moves it durably to path.
func (s *Spool) persist(w *writer, path string) error {
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		os.Remove(w.f.Name())
		return fmt.Errorf("spool: fsync %s: %w", w.f.Name(), err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("spool: close %s: %w", w.f.Name(), err)
	}
	if err := s.place(w.f.Name(), path); err != nil {
		os.Remove(w.f.Name())
		return err
	}
	return nil
}

// place renames a fsynced temporary file to its final path and makes the rename
// durable, creating (durably) the study directory when needed.
func (s *Spool) place(tmp, final string) error {
	dir := filepath.Dir(final)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("spool: create %s: %w", dir, err)
		}
		if err := durable.SyncDir(s.dir); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("spool: rename into %s: %w", final, err)
	}
	// One fsync of the target directory commits the rename (on ext4 and xfs the
	// journal records both directories in the same transaction); a temporary name
	// that reappeared in the root after a crash would be removed by Open anyway.
	return durable.SyncDir(dir)
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

// Instance returns the indexed instance with the given SOP Instance UID.
func (s *Spool) Instance(sopInstanceUID string) (Instance, error) {
	var r record
	if err := s.store.GetJSON(instancesBucket, sopInstanceUID, &r); err != nil {
		return Instance{}, err
	}
	return r.Instance, nil
}

// Instances calls fn for every indexed instance.
func (s *Spool) Instances(fn func(Instance) error) error {
	return s.store.ForEach(instancesBucket, func(_, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		return fn(r.Instance)
	})
}
