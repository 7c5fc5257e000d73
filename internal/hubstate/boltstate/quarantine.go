package boltstate

import (
	"bytes"
	"context"
	"strings"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/hubstate"
)

// studyKey names one box's record of a study. The study UID comes first so that the
// records of one study, whichever box sent them, are neighbours (eachStudy); a NUL
// separates, as neither a UID nor a device ID may hold one.
func studyKey(studyUID, device string) string { return studyUID + "\x00" + device }

// quarantineKey names one quarantined copy: its SOP Instance UID, its box and its
// digest, so that each box keeps its own copy and the same copy is kept once.
func quarantineKey(sop, device, sha string) string { return sop + "\x00" + device + "\x00" + sha }

// eachStudy calls fn with every box's record of studyUID, inside tx.
func eachStudy(tx *durable.Tx, studyUID string, fn func(key string, st hubstate.Study) error) error {
	b := tx.Bucket([]byte(bucketStudies))
	if b == nil {
		return nil
	}
	prefix := []byte(studyKey(studyUID, ""))
	c := b.Cursor()
	var keys []string
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, string(k))
	}
	// fn may write the record it is given; bbolt cursors must not see writes.
	for _, k := range keys {
		var st hubstate.Study
		if _, err := durable.GetJSONTx(tx, bucketStudies, k, &st); err != nil {
			return err
		}
		if err := fn(k, st); err != nil {
			return err
		}
	}
	return nil
}

// QuarantineInstance implements hubstate.Studies.
func (s *Store) QuarantineInstance(ctx context.Context, uploadID string, inst hubstate.Instance) (hubstate.Archived, error) {
	var out hubstate.Archived
	err := s.update(ctx, func(tx *durable.Tx) error {
		out = hubstate.Archived{}
		if err := completeUpload(tx, uploadID); err != nil {
			return err
		}
		key := quarantineKey(inst.SOPInstanceUID, inst.Device, inst.SHA256)
		var old hubstate.Instance
		found, err := durable.GetJSONTx(tx, bucketQuarantine, key, &old)
		if err != nil {
			return err
		}
		if found {
			out.Duplicate = true
		} else {
			// A quarantined copy goes nowhere until an operator settles the clash.
			inst.Quarantined, inst.DeliveredAt = true, time.Time{}
			if err := durable.PutJSONTx(tx, bucketQuarantine, key, inst); err != nil {
				return err
			}
		}
		return studiesOf(tx, inst, &out)
	})
	return out, err
}

// Quarantine implements hubstate.Studies.
func (s *Store) Quarantine(ctx context.Context, n int) ([]hubstate.Instance, int, error) {
	var held []hubstate.Instance
	total := 0
	err := s.view(ctx, func(tx *durable.Tx) error {
		return each(tx, bucketQuarantine, func(_ string, inst hubstate.Instance) error {
			total++
			if len(held) < n {
				held = append(held, inst)
			}
			return nil
		})
	})
	return held, total, err
}

// migrateStudies moves study records kept under their Study Instance UID alone (by
// hubs before records were scoped to their box) to their box's key, once, at open.
// It writes (and so commits and fsyncs) only when it finds such records.
func migrateStudies(db *durable.Store) error {
	var legacy bool
	err := db.View(func(tx *durable.Tx) error {
		b := tx.Bucket([]byte(bucketStudies))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			legacy = legacy || !bytes.Contains(k, []byte{0})
			return nil
		})
	})
	if err != nil || !legacy {
		return err
	}
	return db.Update(moveLegacyStudies)
}

func moveLegacyStudies(tx *durable.Tx) error {
	b := tx.Bucket([]byte(bucketStudies))
	if b == nil {
		return nil
	}
	var legacy []string
	if err := b.ForEach(func(k, _ []byte) error {
		if !strings.Contains(string(k), "\x00") {
			legacy = append(legacy, string(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range legacy {
		var st hubstate.Study
		if _, err := durable.GetJSONTx(tx, bucketStudies, k, &st); err != nil {
			return err
		}
		if err := durable.PutJSONTx(tx, bucketStudies, studyKey(k, st.Device), st); err != nil {
			return err
		}
		if err := b.Delete([]byte(k)); err != nil {
			return err
		}
	}
	return nil
}
