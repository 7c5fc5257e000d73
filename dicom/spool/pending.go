package spool

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"lifeline/internal/durable"
)

// PendingInstances returns the instances received (or replaced) since their study was
// last queued: durable and indexed on the box, but not yet part of a Study on
// ReadyQueue because the study has not been quiet for the quiet period. The forwarder
// sends them upstream while the modality still sends; the quiet period only decides
// when the study is declared complete.
//
// skip, when not nil, is asked for each SOP Instance UID before its record is read,
// so that a caller polling often pays only a key scan for instances it already
// knows. It runs inside a read transaction and must not call back into the spool.
func (s *Spool) PendingInstances(skip func(sopInstanceUID string) bool) ([]Instance, error) {
	var out []Instance
	err := s.store.View(func(tx *durable.Tx) error {
		pb := tx.Bucket([]byte(pendingBucket))
		ib := tx.Bucket([]byte(instancesBucket))
		if pb == nil || ib == nil {
			return nil
		}
		c := pb.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				continue
			}
			sop := string(k[i+1:])
			if skip != nil && skip(sop) {
				continue
			}
			v := ib.Get([]byte(sop))
			if v == nil {
				continue // dropped meanwhile; the next queueing skips it too
			}
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("spool: index entry %q: %w", sop, err)
			}
			out = append(out, r.Instance)
		}
		return nil
	})
	return out, err
}

// MarkForwardedAll is MarkForwarded for many instances in one commit, for a study
// whose instances the hub confirmed before the study was declared complete. Unknown
// instances are skipped.
func (s *Spool) MarkForwardedAll(sopInstanceUIDs []string) error {
	if len(sopInstanceUIDs) == 0 {
		return nil
	}
	return s.store.Update(func(tx *durable.Tx) error {
		ib, err := durable.Bucket(tx, instancesBucket)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		for _, sop := range sopInstanceUIDs {
			if _, err := markForwarded(ib, sop, now); err != nil {
				return err
			}
		}
		return nil
	})
}
