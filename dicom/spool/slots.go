package spool

// The one-flush receive path (issue 17).
//
// Before, each new instance waited for four flushes before its C-STORE response: the
// fsync of its temporary file, a rename and the fsync of its directory, and bbolt's
// two (data pages, then the meta page) for its index entry.
//
// Now a new instance is received into a slot: an empty file the spool created ahead of
// time, whose directory entry was already made durable (one directory fsync covers a
// batch of slots). CommitDurable sets an extended attribute on the slot, the mark,
// holding the size and SHA-256 of the bytes, and fsyncs the slot. That one flush (on
// ext4 one journal commit and one cache flush) makes data, size and mark durable
// together, and no directory changes: the same work as the disk's own "write and fsync
// each instance to its own new file". The C-STORE is acknowledged then.
//
// Afterwards, off the acknowledgement path, the lander moves acknowledged slots in
// batches to their final names (DIR/STUDY/SOP.dcm), makes the renames, any new study
// directory and a fresh batch of slots durable with one fsync per directory touched,
// indexes the whole batch in one bbolt transaction, and only then forgets the slots.
// An index entry therefore still means "the file is durable at Path", and readers of
// the index (the forwarder) see nothing new in what "indexed" means; they see an
// instance a few milliseconds after its acknowledgement instead of before it.
//
// A crash leaves each slot in one of three states, which Open tells apart by its mark:
// no mark (empty or partly received, never acknowledged: removed), a mark that does not
// match the bytes (the fsync did not finish, never acknowledged: removed), or a mark
// that matches (durable, perhaps acknowledged: moved to its final name and indexed like
// any file the index lacks).
//
// Why a mark and not a pre-allocated log: a log also takes one flush, but every byte
// would be written twice (log, then file) and compete with the next instance's flush;
// a slot's bytes are written once and the slot becomes the file by a rename. Why an
// extended attribute: it is inode metadata, made durable by the same fsync as the data,
// and it keeps the file a pure Part 10 file. A file system without user extended
// attributes (probed at Open) keeps the former path: fsync, rename, directory fsync,
// index, each before the response.

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lifeline/internal/durable"
)

const (
	slotPrefix = ".slot-"
	// slotTarget is how many ready slots the lander keeps, restocking when a quarter
	// is used: at 1,000 instances/s (eight associations of small images) a batch
	// uses 100. Begin falls back to the former path when none is ready.
	slotTarget = 256
	// landDelay lets a batch grow before the lander flushes it: the directory fsyncs
	// and bbolt's two flushes are paid once per batch, not per instance, and take
	// a few milliseconds of the disk in every 100 from the acknowledging fsyncs. The
	// forwarder sees an instance up to this much later; its upload takes longer.
	landDelay = 100 * time.Millisecond
	// landAttempts bounds the retries of a batch the file system refuses; after them
	// the instance stays in its slot, durable, and the next Open lands it.
	landAttempts = 5
)

// IsSlot reports whether path names one of the spool's slots: a file that waits for
// an instance or holds one not yet moved to its final name, never a stored instance.
func IsSlot(path string) bool { return strings.HasPrefix(filepath.Base(path), slotPrefix) }

// mark is what a slot's extended attribute records about the bytes acknowledged in it.
type mark struct {
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	CallingAE  string    `json:"calling_ae,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
}

// landing is an instance acknowledged from its slot and not yet indexed.
type landing struct {
	inst     Instance
	at       string // where its file is now: the slot, then inst.Path
	attempts int
	indexed  bool          // set before done is closed
	done     chan struct{} // closed once indexed, or given up for the next Open
}

// takeSlot returns a ready slot, or "" when there is none (or slots are off).
func (s *Spool) takeSlot() string {
	if !s.slotsOn {
		return ""
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if len(s.ready) < slotTarget*3/4 {
		s.kickLocked()
	}
	if len(s.ready) == 0 {
		return ""
	}
	p := s.ready[len(s.ready)-1]
	s.ready = s.ready[:len(s.ready)-1]
	return p
}

// commitSlot makes a new instance durable in its slot with one fsync and hands it to
// the lander. The caller holds the instance's lock; the returned landing is already
// visible to lookups of its SOP Instance UID.
func (s *Spool) commitSlot(w *writer, inst Instance) (*landing, error) {
	m, err := json.Marshal(mark{Size: inst.Size, SHA256: inst.SHA256, CallingAE: inst.CallingAE, ReceivedAt: inst.ReceivedAt})
	if err != nil {
		return nil, err
	}
	if err := setMark(w.f, m); err != nil {
		return nil, fmt.Errorf("spool: mark %s: %w", w.f.Name(), err)
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		os.Remove(w.f.Name())
		return nil, fmt.Errorf("spool: fsync %s: %w", w.f.Name(), err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return nil, fmt.Errorf("spool: close %s: %w", w.f.Name(), err)
	}
	l := &landing{inst: inst, at: w.f.Name(), done: make(chan struct{})}
	s.lmu.Lock()
	s.landing[inst.SOPInstanceUID] = l
	s.lq = append(s.lq, l)
	s.kickLocked()
	s.lmu.Unlock()
	return l, nil
}

// landed returns the landing of an acknowledged, not yet indexed instance.
func (s *Spool) landed(sop string) *landing {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.landing[sop]
}

// Settle waits until every instance acknowledged before the call is indexed (or, if
// the file system refused to land it, left for the next Open).
func (s *Spool) Settle() {
	s.lmu.Lock()
	var wait []chan struct{}
	for _, l := range s.landing {
		wait = append(wait, l.done)
	}
	s.lmu.Unlock()
	for _, c := range wait {
		<-c
	}
}

// Close waits for the lander to index what was acknowledged and stops it. The spool
// must not receive after Close; the store stays open (it is the caller's).
func (s *Spool) Close() error {
	s.Settle()
	s.lmu.Lock()
	s.closed = true
	s.lmu.Unlock()
	s.lwg.Wait()
	return nil
}

func (s *Spool) kickLocked() {
	if s.lrunning || s.closed {
		return
	}
	s.lrunning = true
	s.lwg.Add(1)
	go s.land()
}

// land runs batches until nothing is queued and the slots are stocked.
func (s *Spool) land() {
	defer s.lwg.Done()
	for {
		time.Sleep(landDelay)
		s.lmu.Lock()
		batch := s.lq
		s.lq = nil
		need := slotTarget - len(s.ready)
		if len(batch) == 0 && (need <= slotTarget/4 || s.closed) {
			s.lrunning = false
			s.lmu.Unlock()
			return
		}
		if s.closed {
			need = 0
		}
		s.lmu.Unlock()
		if err := s.landBatch(batch, need); err != nil {
			s.log.Error("cannot land acknowledged instances yet; they are durable in their slots", "err", err, "instances", len(batch))
			s.retry(batch)
			time.Sleep(time.Second)
		}
	}
}

// retry queues a failed batch again, giving up on instances tried landAttempts times:
// they stay durable where they are, and the next Open lands them.
func (s *Spool) retry(batch []*landing) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	var again []*landing
	for _, l := range batch {
		l.attempts++
		if l.attempts < landAttempts && !s.closed {
			again = append(again, l)
			continue
		}
		s.log.Error("acknowledged instance left unindexed until the next start", "sop_instance_uid", l.inst.SOPInstanceUID, "file", l.at)
		s.forgetLocked(l)
	}
	s.lq = append(again, s.lq...)
}

func (s *Spool) forgetLocked(l *landing) {
	if s.landing[l.inst.SOPInstanceUID] == l {
		delete(s.landing, l.inst.SOPInstanceUID)
	}
	close(l.done)
}

// landBatch moves a batch to its final names, creates need fresh slots, fsyncs every
// directory touched once, and indexes the batch in one transaction.
func (s *Spool) landBatch(batch []*landing, need int) error {
	dirs := map[string]bool{}
	for _, l := range batch {
		dir := filepath.Dir(l.inst.Path)
		if !dirs[dir] {
			if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("spool: create %s: %w", dir, err)
			}
			dirs[dir] = true
		}
		if l.at != l.inst.Path {
			if err := os.Rename(l.at, l.inst.Path); err != nil {
				return fmt.Errorf("spool: rename into %s: %w", l.inst.Path, err)
			}
			l.at = l.inst.Path
		}
	}
	fresh, err := s.makeSlots(need)
	if err == nil {
		err = s.syncDirs(dirs)
	}
	if err != nil {
		for _, p := range fresh {
			os.Remove(p)
		}
		return err
	}
	s.lmu.Lock()
	s.ready = append(s.ready, fresh...)
	s.lmu.Unlock()
	failed, err := s.indexBatch(batch)
	s.lmu.Lock()
	for _, l := range batch {
		if !failed[l] {
			l.indexed = true
			s.forgetLocked(l)
		}
	}
	s.lmu.Unlock()
	if err != nil {
		var again []*landing
		for _, l := range batch {
			if failed[l] {
				again = append(again, l)
			}
		}
		s.log.Error("cannot index acknowledged instances yet; they are durable under their names", "err", err, "instances", len(again))
		s.retry(again)
		time.Sleep(time.Second)
	}
	return nil
}

// indexBatch indexes a batch in one transaction. Should that fail, it indexes the
// instances one by one, so that one the index refuses (a damaged study entry, say)
// does not hold back the others; it returns those that failed.
func (s *Spool) indexBatch(batch []*landing) (map[*landing]bool, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	err := s.store.Update(func(tx *durable.Tx) error {
		for _, l := range batch {
			if err := indexNewTx(tx, l.inst); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(batch) == 1 {
		if err != nil {
			return map[*landing]bool{batch[0]: true}, fmt.Errorf("spool: index: %w", err)
		}
		return nil, nil
	}
	failed := map[*landing]bool{}
	var first error
	for _, l := range batch {
		if err := s.store.Update(func(tx *durable.Tx) error { return indexNewTx(tx, l.inst) }); err != nil {
			failed[l] = true
			first = cmp.Or(first, fmt.Errorf("spool: index %s: %w", l.inst.SOPInstanceUID, err))
		}
	}
	return failed, first
}

// makeSlots creates n empty slots; they are durable after the next fsync of the root.
func (s *Spool) makeSlots(n int) ([]string, error) {
	var out []string
	for i := 0; i < n; i++ {
		f, err := os.CreateTemp(s.dir, slotPrefix+"*")
		if err != nil {
			for _, p := range out {
				os.Remove(p)
			}
			return nil, fmt.Errorf("spool: create slot: %w", err)
		}
		f.Close()
		out = append(out, f.Name())
	}
	return out, nil
}

// syncDirs fsyncs the spool's root (new study directories, slots renamed out of it,
// new slots) and each study directory files were renamed into. On ext4 and xfs the
// journal holds a rename's two directories in one transaction, so the first fsync
// usually finds the rest already committed.
func (s *Spool) syncDirs(dirs map[string]bool) error {
	if err := durable.SyncDir(s.dir); err != nil {
		return err
	}
	for d := range dirs {
		if err := durable.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// indexNewTx indexes an instance that arrived through a slot, reading within the
// transaction whatever the index already holds for its SOP Instance UID.
func indexNewTx(tx *durable.Tx, inst Instance) error {
	var old record
	had, err := durable.GetJSONTx(tx, instancesBucket, inst.SOPInstanceUID, &old)
	if err != nil {
		return err
	}
	return indexTx(tx, inst, old, had)
}

// openSlots probes whether the file system keeps marks and, if so, stocks the slots.
func (s *Spool) openSlots() error {
	f, err := os.CreateTemp(s.dir, slotPrefix+"probe-*")
	if err != nil {
		return fmt.Errorf("spool: create slot: %w", err)
	}
	perr := setMark(f, []byte("{}"))
	f.Close()
	os.Remove(f.Name())
	if perr != nil {
		s.log.Warn("file system keeps no extended attributes; each instance waits for its rename and index before its response",
			"dir", s.dir, "err", perr)
		return nil
	}
	fresh, err := s.makeSlots(slotTarget)
	if err != nil {
		return err
	}
	if err := durable.SyncDir(s.dir); err != nil {
		return err
	}
	s.slotsOn = true
	s.ready = fresh
	return nil
}

// recoverSlots lands the slots a crash left with a matching mark (the files keep the
// mark, which reindex reads) and removes the others. It returns how many it landed
// and how many that held bytes it removed.
func (s *Spool) recoverSlots() (int, int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, 0, fmt.Errorf("spool: read %s: %w", s.dir, err)
	}
	landed := 0
	dirs := map[string]bool{}
	removed := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), slotPrefix) {
			continue
		}
		p := filepath.Join(s.dir, e.Name())
		m, ok := checkSlot(p)
		if !ok {
			if err := os.Remove(p); err != nil {
				return 0, 0, fmt.Errorf("spool: remove slot: %w", err)
			}
			if m.SHA256 != "" || m.Size != 0 {
				removed++ // a slot that held something, never acknowledged
			}
			continue
		}
		final, err := finalPath(s.dir, p)
		if err != nil {
			s.log.Error("acknowledged slot does not parse; moved aside", "path", p, "err", err)
			if err := s.quarantine(p); err != nil {
				return 0, 0, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
			return 0, 0, err
		}
		if err := os.Rename(p, final); err != nil {
			return 0, 0, fmt.Errorf("spool: land %s: %w", p, err)
		}
		dirs[filepath.Dir(final)] = true
		landed++
	}
	if err := s.syncDirs(dirs); err != nil {
		return 0, 0, err
	}
	return landed, removed, nil
}

// checkSlot reports whether a slot holds exactly the bytes its mark describes.
func checkSlot(p string) (mark, bool) {
	var m mark
	raw, err := getMark(p)
	if err != nil || json.Unmarshal(raw, &m) != nil || m.SHA256 == "" {
		st, _ := os.Stat(p)
		if st != nil && st.Size() > 0 {
			m.Size = st.Size()
		}
		return m, false
	}
	f, err := os.Open(p)
	if err != nil {
		return m, false
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return m, err == nil && n == m.Size && hex.EncodeToString(h.Sum(nil)) == m.SHA256
}
