package boltstate

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/hubstate"
)

// CreateUpload implements hubstate.Studies.
func (s *Store) CreateUpload(ctx context.Context, asked hubstate.Upload) (hubstate.Upload, error) {
	var u hubstate.Upload
	err := s.group(ctx, func(tx *durable.Tx) error {
		u = asked
		var old hubstate.Upload
		found, err := durable.GetJSONTx(tx, bucketUploads, u.ID, &old)
		if err != nil {
			return err
		}
		if found {
			u = old
			return nil
		}
		_, held, err := heldIn(tx, u.Device)(u.SOPInstanceUID, u.SHA256)
		if err != nil {
			return err
		}
		if held {
			u.Offset, u.Complete = u.Length, true
		}
		return durable.PutJSONTx(tx, bucketUploads, u.ID, u)
	})
	return u, err
}

// Upload implements hubstate.Studies.
func (s *Store) Upload(ctx context.Context, id string) (hubstate.Upload, error) {
	var u hubstate.Upload
	err := s.view(ctx, func(tx *durable.Tx) error {
		found, err := durable.GetJSONTx(tx, bucketUploads, id, &u)
		if err == nil && !found {
			return fmt.Errorf("upload %s: %w", id, hubstate.ErrNotFound)
		}
		return err
	})
	return u, err
}

// AdvanceUpload implements hubstate.Studies.
func (s *Store) AdvanceUpload(ctx context.Context, id string, from, to int64) (hubstate.Upload, error) {
	var u hubstate.Upload
	err := s.group(ctx, func(tx *durable.Tx) error {
		u = hubstate.Upload{}
		found, err := durable.GetJSONTx(tx, bucketUploads, id, &u)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("upload %s: %w", id, hubstate.ErrNotFound)
		case u.Complete || u.Offset != from:
			return &hubstate.OffsetError{Upload: u, From: from}
		case to < from || to > u.Length:
			return fmt.Errorf("upload %s: offset %d..%d outside its %d bytes", id, from, to, u.Length)
		}
		u.Offset = to
		return durable.PutJSONTx(tx, bucketUploads, id, u)
	})
	return u, err
}

// DropUpload implements hubstate.Studies.
func (s *Store) DropUpload(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *durable.Tx) error { return del(tx, bucketUploads, id) })
}

// ArchiveInstance implements hubstate.Studies.
func (s *Store) ArchiveInstance(ctx context.Context, uploadID string, inst hubstate.Instance, owed bool) (hubstate.Archived, error) {
	var out hubstate.Archived
	err := s.group(ctx, func(tx *durable.Tx) error {
		out = hubstate.Archived{}
		if err := completeUpload(tx, uploadID); err != nil {
			return err
		}
		var old hubstate.Instance
		archived, err := durable.GetJSONTx(tx, bucketInstances, inst.SOPInstanceUID, &old)
		switch {
		case err != nil:
			return err
		case archived && old.SHA256 != inst.SHA256:
			return &hubstate.ConflictError{Archived: old}
		case archived:
			out.Duplicate = true
		default:
			if err := durable.PutJSONTx(tx, bucketInstances, inst.SOPInstanceUID, inst); err != nil {
				return err
			}
			if owed {
				if err := putKey(tx, bucketDelivery, inst.SOPInstanceUID); err != nil {
					return err
				}
			}
		}
		return studiesOf(tx, inst, &out)
	})
	return out, err
}

// completeUpload marks an upload complete inside tx.
func completeUpload(tx *durable.Tx, uploadID string) error {
	var u hubstate.Upload
	found, err := durable.GetJSONTx(tx, bucketUploads, uploadID, &u)
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("upload %s: %w", uploadID, hubstate.ErrNotFound)
	}
	u.Offset, u.Complete = u.Length, true
	return durable.PutJSONTx(tx, bucketUploads, u.ID, u)
}

// studiesOf recomputes the milestones of every box's record of inst's study inside
// tx: the uploading box's goes to out.Study, the others that completed one to
// out.Others.
func studiesOf(tx *durable.Tx, inst hubstate.Instance, out *hubstate.Archived) error {
	all, err := progress(tx, inst.StudyUID)
	if err != nil {
		return err
	}
	out.Place(inst.Device, all)
	return nil
}

func putKey(tx *durable.Tx, bucket, key string) error {
	b, err := durable.Bucket(tx, bucket)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), nil)
}

// progress recomputes and stores the milestones of every box's record of a study
// inside tx; none when no box sent a manifest for it.
func progress(tx *durable.Tx, studyUID string) ([]hubstate.StudyProgress, error) {
	var out []hubstate.StudyProgress
	err := eachStudy(tx, studyUID, func(key string, st hubstate.Study) error {
		sp := hubstate.StudyProgress{Study: st}
		var err error
		if sp.Milestones, err = sp.Study.Progress(heldIn(tx, st.Device)); err != nil {
			return err
		}
		out = append(out, sp)
		return durable.PutJSONTx(tx, bucketStudies, key, sp.Study)
	})
	return out, err
}

// heldIn looks up, inside tx, the instance held for a study record of device: the
// archived instance with the expected digest, else the box's quarantined copy.
func heldIn(tx *durable.Tx, device string) hubstate.Held {
	return func(sop, sha string) (hubstate.Instance, bool, error) {
		var inst hubstate.Instance
		ok, err := durable.GetJSONTx(tx, bucketInstances, sop, &inst)
		if err != nil || (ok && inst.SHA256 == sha) {
			return inst, ok, err
		}
		inst = hubstate.Instance{}
		ok, err = durable.GetJSONTx(tx, bucketQuarantine, quarantineKey(sop, device, sha), &inst)
		return inst, ok, err
	}
}

// Instance implements hubstate.Studies.
func (s *Store) Instance(ctx context.Context, sop string) (hubstate.Instance, error) {
	var inst hubstate.Instance
	err := s.view(ctx, func(tx *durable.Tx) error {
		found, err := durable.GetJSONTx(tx, bucketInstances, sop, &inst)
		if err == nil && !found {
			return fmt.Errorf("instance %s: %w", sop, hubstate.ErrNotFound)
		}
		return err
	})
	return inst, err
}

// RecordManifest implements hubstate.Studies.
func (s *Store) RecordManifest(ctx context.Context, m hubstate.Manifest) (hubstate.StudyProgress, error) {
	var sp hubstate.StudyProgress
	err := s.update(ctx, func(tx *durable.Tx) error {
		sp = hubstate.StudyProgress{}
		key := studyKey(m.StudyUID, m.Device)
		if _, err := durable.GetJSONTx(tx, bucketStudies, key, &sp.Study); err != nil {
			return err
		}
		sp.Study.Merge(m)
		var err error
		if sp.Milestones, err = sp.Study.Progress(heldIn(tx, m.Device)); err != nil {
			return err
		}
		return durable.PutJSONTx(tx, bucketStudies, key, sp.Study)
	})
	return sp, err
}

// Study implements hubstate.Studies.
func (s *Store) Study(ctx context.Context, device, studyUID string) (hubstate.StudyView, error) {
	var v hubstate.StudyView
	err := s.view(ctx, func(tx *durable.Tx) error {
		found, err := durable.GetJSONTx(tx, bucketStudies, studyKey(studyUID, device), &v.Study)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("study %s of device %s: %w", studyUID, device, hubstate.ErrNotFound)
		}
		v.Archived, err = heldFor(tx, v.Study)
		return err
	})
	return v, err
}

func heldFor(tx *durable.Tx, st hubstate.Study) (map[string]hubstate.Instance, error) {
	out := map[string]hubstate.Instance{}
	held := heldIn(tx, st.Device)
	for sop, sha := range st.Expected {
		inst, ok, err := held(sop, sha)
		if err != nil {
			return nil, err
		}
		if ok {
			out[sop] = inst
		}
	}
	return out, nil
}

// RecentStudies implements hubstate.Studies. It reads every study: the embedded
// engine serves one hub, whose study count a scan handles.
func (s *Store) RecentStudies(ctx context.Context, n int) ([]hubstate.StudyView, error) {
	var out []hubstate.StudyView
	err := s.view(ctx, func(tx *durable.Tx) error {
		var all []hubstate.Study
		if err := each(tx, bucketStudies, func(_ string, st hubstate.Study) error {
			all = append(all, st)
			return nil
		}); err != nil {
			return err
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].ManifestAt.After(all[j].ManifestAt) })
		if len(all) > n {
			all = all[:max(n, 0)]
		}
		for _, st := range all {
			archived, err := heldFor(tx, st)
			if err != nil {
				return err
			}
			out = append(out, hubstate.StudyView{Study: st, Archived: archived})
		}
		return nil
	})
	return out, err
}

// DueDeliveries implements hubstate.Studies.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, n int) ([]hubstate.Instance, int, error) {
	var due []hubstate.Instance
	pending := 0
	err := s.view(ctx, func(tx *durable.Tx) error {
		b := tx.Bucket([]byte(bucketDelivery))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			pending++
			if len(due) >= n {
				return nil
			}
			var inst hubstate.Instance
			ok, err := durable.GetJSONTx(tx, bucketInstances, string(k), &inst)
			if err != nil || !ok || inst.NextAttempt.After(now) {
				return err
			}
			due = append(due, inst)
			return nil
		})
	})
	return due, pending, err
}

// RecordDeliveries implements hubstate.Studies.
func (s *Store) RecordDeliveries(ctx context.Context, outcomes []hubstate.DeliveryOutcome) ([]hubstate.StudyProgress, error) {
	var out []hubstate.StudyProgress
	err := s.update(ctx, func(tx *durable.Tx) error {
		out = nil
		var studies []string
		for _, o := range outcomes {
			var inst hubstate.Instance
			found, err := durable.GetJSONTx(tx, bucketInstances, o.SOPInstanceUID, &inst)
			switch {
			case err != nil:
				return err
			case !found:
				return fmt.Errorf("delivery of instance %s: %w", o.SOPInstanceUID, hubstate.ErrNotFound)
			}
			inst.Attempts++
			if o.Err != "" {
				inst.LastError, inst.NextAttempt = o.Err, o.RetryAt
				if err := durable.PutJSONTx(tx, bucketInstances, inst.SOPInstanceUID, inst); err != nil {
					return err
				}
				continue
			}
			inst.DeliveredAt, inst.LastError, inst.NextAttempt = o.At, "", time.Time{}
			if o.ForgetPath {
				inst.Path = ""
			}
			if err := durable.PutJSONTx(tx, bucketInstances, inst.SOPInstanceUID, inst); err != nil {
				return err
			}
			if err := del(tx, bucketDelivery, inst.SOPInstanceUID); err != nil {
				return err
			}
			if !slices.Contains(studies, inst.StudyUID) {
				studies = append(studies, inst.StudyUID)
			}
		}
		// Only now, with every outcome recorded, can a study be whole.
		for _, uid := range studies {
			sps, err := progress(tx, uid)
			if err != nil {
				return err
			}
			out = append(out, sps...)
		}
		return nil
	})
	return out, err
}
