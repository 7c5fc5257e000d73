package spool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"lifeline/dicom"
	"lifeline/internal/durable"
)

// Run queues studies that have been quiet for the quiet period and deletes forwarded
// files past their retention, until ctx is cancelled.
func (s *Spool) Run(ctx context.Context) error {
	tick := min(max(s.cfg.QuietPeriod/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if _, err := s.FlushReady(now); err != nil {
				s.log.Error("cannot queue complete studies", "err", err)
			}
			if now.Sub(lastPrune) > time.Minute || s.cfg.RetainForwarded < 0 {
				lastPrune = now
				if _, err := s.prune(now, false); err != nil {
					s.log.Error("cannot delete forwarded files", "err", err)
				}
			}
		}
	}
}

// FlushReady queues on ReadyQueue every study with pending instances whose last
// instance arrived at least the quiet period before now, and returns how many.
func (s *Spool) FlushReady(now time.Time) (int, error) {
	var due []string
	err := s.store.ForEach(studiesBucket, func(k, v []byte) error {
		var st studyRecord
		if err := json.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("spool: study %s index entry: %w", k, err)
		}
		if st.Pending > 0 && now.Sub(st.LastReceived) >= s.cfg.QuietPeriod {
			due = append(due, st.StudyUID)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, uid := range due {
		var queued *Study
		err := s.store.Update(func(tx *durable.Tx) error {
			var err error
			queued, err = s.queueStudyTx(tx, uid, now, false)
			return err
		})
		if err != nil {
			return n, err
		}
		if queued != nil {
			n++
			s.log.Info("study complete; queued for forwarding", "study_uid", uid, "instances", len(queued.Instances),
				"patient_id", queued.PatientID, "calling_ae", queued.CallingAE)
		}
	}
	return n, nil
}

// queueStudyTx pushes a Study with the study's pending instances, atomically with
// clearing them, so that a crash can neither lose nor duplicate the hand-over.
func (s *Spool) queueStudyTx(tx *durable.Tx, uid string, now time.Time, immediately bool) (*Study, error) {
	sb, err := durable.Bucket(tx, studiesBucket)
	if err != nil {
		return nil, err
	}
	ib, err := durable.Bucket(tx, instancesBucket)
	if err != nil {
		return nil, err
	}
	v := sb.Get([]byte(uid))
	if v == nil {
		return nil, nil
	}
	var st studyRecord
	if err := json.Unmarshal(v, &st); err != nil {
		return nil, err
	}
	// Re-check inside the transaction: an instance may have arrived meanwhile.
	if st.Pending == 0 || !immediately && now.Sub(st.LastReceived) < s.cfg.QuietPeriod {
		return nil, nil
	}
	study := &Study{StudyUID: st.StudyUID, PatientID: st.PatientID, PatientName: st.PatientName,
		Modality: st.Modality, CallingAE: st.CallingAE, CompletedAt: now.UTC()}
	pb, err := durable.Bucket(tx, pendingBucket)
	if err != nil {
		return nil, err
	}
	prefix := pendingKey(uid, "")
	var keys [][]byte
	c := pb.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := pb.Delete(k); err != nil {
			return nil, err
		}
		sop := string(k[len(prefix):])
		iv := ib.Get([]byte(sop))
		if iv == nil {
			continue
		}
		var r record
		if err := json.Unmarshal(iv, &r); err != nil {
			return nil, err
		}
		study.Instances = append(study.Instances, r.Instance)
		r.Queued = true
		data, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		if err := ib.Put([]byte(sop), data); err != nil {
			return nil, err
		}
	}
	st.Pending = 0
	st.QueuedAt = now.UTC()
	sdata, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	if err := sb.Put([]byte(uid), sdata); err != nil {
		return nil, err
	}
	if len(study.Instances) == 0 {
		return nil, nil
	}
	data, err := json.Marshal(study)
	if err != nil {
		return nil, err
	}
	if _, err := durable.PushTx(tx, s.queue, data); err != nil {
		return nil, err
	}
	return study, nil
}

// MarkForwarded records that the hub has durably taken the instance. Its file stays
// for RetainForwarded (a local copy to look at or resend), then Run deletes it; a
// shortage of space deletes forwarded files earlier, oldest first.
func (s *Spool) MarkForwarded(sopInstanceUID string) error {
	return s.store.Update(func(tx *durable.Tx) error {
		ib, err := durable.Bucket(tx, instancesBucket)
		if err != nil {
			return err
		}
		found, err := markForwarded(ib, sopInstanceUID, time.Now().UTC())
		if err == nil && !found {
			err = fmt.Errorf("spool: mark forwarded %s: %w", sopInstanceUID, durable.ErrNotFound)
		}
		return err
	})
}

// markForwarded records in the instances bucket ib that the hub holds sop, unless it
// was recorded before; found is false when the spool has no such instance.
func markForwarded(ib *bolt.Bucket, sop string, now time.Time) (found bool, err error) {
	v := ib.Get([]byte(sop))
	if v == nil {
		return false, nil
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return true, err
	}
	if !r.ForwardedAt.IsZero() {
		return true, nil
	}
	r.ForwardedAt = now
	data, err := json.Marshal(r)
	if err != nil {
		return true, err
	}
	return true, ib.Put([]byte(sop), data)
}

// prune deletes forwarded files past retention, or (urgent) every forwarded file,
// oldest first, until free space is back above MinFreeBytes.
func (s *Spool) prune(now time.Time, urgent bool) (int, error) {
	var cands []record
	err := s.store.ForEach(instancesBucket, func(_, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if !r.ForwardedAt.IsZero() && (urgent || now.Sub(r.ForwardedAt) >= s.cfg.RetainForwarded) {
			cands = append(cands, r)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].ForwardedAt.Before(cands[j].ForwardedAt) })
	n := 0
	for _, r := range cands {
		if urgent {
			if free, err := s.FreeBytes(); err == nil && free >= s.cfg.MinFreeBytes {
				break
			}
		}
		l := s.lock(r.SOPInstanceUID)
		l.Lock()
		err := s.deleteForwarded(r)
		l.Unlock()
		if err != nil {
			return n, err
		}
		n++
	}
	if n > 0 {
		s.log.Info("deleted forwarded instances from the spool", "count", n, "urgent", urgent)
	}
	return n, nil
}

func (s *Spool) deleteForwarded(r record) error {
	// Re-read under the instance lock: it may have been replaced by new bytes that
	// the hub does not have yet.
	var cur record
	if err := s.store.GetJSON(instancesBucket, r.SOPInstanceUID, &cur); err != nil || cur.SHA256 != r.SHA256 || cur.ForwardedAt.IsZero() {
		return nil
	}
	if err := s.dropInstance(cur); err != nil {
		return err
	}
	if err := os.Remove(cur.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: delete %s: %w", cur.Path, err)
	}
	dir := filepath.Dir(cur.Path)
	os.Remove(dir) // only succeeds when the study directory is empty
	return durable.SyncDir(dir)
}

// RecentStudies returns up to n studies, most recently received first.
func (s *Spool) RecentStudies(n int) []dicom.StudySummary {
	var all []dicom.StudySummary
	s.store.ForEach(studiesBucket, func(_, v []byte) error {
		var st studyRecord
		if json.Unmarshal(v, &st) == nil {
			all = append(all, dicom.StudySummary{StudyUID: st.StudyUID, PatientID: st.PatientID, Modality: st.Modality,
				CallingAE: st.CallingAE, Instances: st.Instances, Bytes: st.Bytes, FirstReceived: st.FirstReceived,
				LastReceived: st.LastReceived, Queued: st.Pending == 0 && !st.QueuedAt.IsZero()})
		}
		return nil
	})
	sort.Slice(all, func(i, j int) bool { return all[i].LastReceived.After(all[j].LastReceived) })
	if len(all) > n {
		all = all[:n]
	}
	return all
}

// Status is the spool's part of the box's status.
type Status struct {
	Dir          string               `json:"dir"`
	FreeBytes    uint64               `json:"free_bytes"`
	MinFreeBytes uint64               `json:"min_free_bytes"`
	Full         bool                 `json:"full"`
	ReadyQueued  int                  `json:"ready_queued"` // studies waiting for the forwarder
	Duplicates   uint64               `json:"duplicates"`   // re-sent identical instances since start
	Replaced     uint64               `json:"replaced"`     // re-sent instances with new bytes since start
	Recent       []dicom.StudySummary `json:"recent_studies"`
}

// Status returns a snapshot for the status API.
func (s *Spool) Status() Status {
	st := Status{Dir: s.dir, MinFreeBytes: s.cfg.MinFreeBytes, Recent: s.RecentStudies(10)}
	st.FreeBytes, _ = s.FreeBytes()
	st.Full = st.FreeBytes < s.cfg.MinFreeBytes
	st.ReadyQueued, _ = s.queue.Len()
	s.mu.Lock()
	st.Duplicates, st.Replaced = s.dups, s.replac
	s.mu.Unlock()
	return st
}
