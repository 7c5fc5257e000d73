package transfer

import (
	"context"
	"os"
	"sort"
	"time"

	"lifeline/dicom/pacs"
	"lifeline/internal/durable"
)

// deliveryTick is how often the delivery loop looks for instances whose back-off
// has run out, besides being woken when new ones arrive.
const deliveryTick = 500 * time.Millisecond

func (in *Ingest) poke() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// Run delivers archived instances to the PACS until ctx ends, retrying failures with
// capped exponential back-off. An instance leaves the delivery list only when the PACS
// confirmed it. Without a PACS, Run only waits for ctx.
func (in *Ingest) Run(ctx context.Context) error {
	if in.deliver == nil {
		<-ctx.Done()
		return nil
	}
	in.log.Info("transfer: delivering to PACS", "target", in.deliver.Target())
	t := time.NewTicker(deliveryTick)
	defer t.Stop()
	for {
		for {
			n, err := in.deliverDue(ctx)
			if err != nil {
				in.log.Error("transfer: delivery loop", "err", err)
			}
			if n < in.cfg.DeliveryBatch || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-in.wake:
		}
	}
}

// deliverDue sends one batch of due instances and returns how many it tried.
func (in *Ingest) deliverDue(ctx context.Context) (int, error) {
	now := time.Now()
	var batch []InstanceRecord
	pending := 0
	err := in.store.View(func(tx *durable.Tx) error {
		b := tx.Bucket([]byte(bucketDelivery))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			pending++
			if len(batch) >= in.cfg.DeliveryBatch {
				return nil
			}
			var rec InstanceRecord
			ok, err := getJSONTx(tx, bucketInstances, string(k), &rec)
			if err != nil || !ok {
				return err
			}
			if rec.NextAttempt.After(now) {
				return nil
			}
			batch = append(batch, rec)
			return nil
		})
	})
	in.m.pending.Set(float64(pending))
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	items := make([]pacs.Instance, len(batch))
	for i, rec := range batch {
		items[i] = pacs.Instance{SOPInstanceUID: rec.SOPInstanceUID, SOPClassUID: rec.SOPClassUID, StudyUID: rec.StudyUID,
			TransferSyntax: rec.TransferSyntax, Path: rec.Path, Size: rec.Size}
	}
	errs := in.deliver.Deliver(ctx, items)
	if ctx.Err() != nil {
		return 0, nil // shutting down: the outcome is unknown, try again next start
	}
	now = time.Now().UTC()
	type done struct {
		st studyRecord
		m  [3]bool
	}
	var finished []done
	var prune []string
	err = in.store.Update(func(tx *durable.Tx) error {
		studies := map[string]bool{}
		for i, rec := range batch {
			if errs[i] != nil {
				rec.Attempts++
				rec.LastError = errs[i].Error()
				rec.NextAttempt = now.Add(backoff(in.cfg.RetryMin, in.cfg.RetryMax, rec.Attempts))
				if err := putJSONTx(tx, bucketInstances, rec.SOPInstanceUID, rec); err != nil {
					return err
				}
				continue
			}
			rec.Attempts++
			rec.DeliveredAt, rec.LastError, rec.NextAttempt = now, "", time.Time{}
			if in.cfg.PruneAfterDelivery {
				prune = append(prune, rec.Path)
				rec.Path = ""
			}
			if err := putJSONTx(tx, bucketInstances, rec.SOPInstanceUID, rec); err != nil {
				return err
			}
			if err := tx.Bucket([]byte(bucketDelivery)).Delete([]byte(rec.SOPInstanceUID)); err != nil {
				return err
			}
			studies[rec.StudyUID] = true
		}
		// Only now, with every record of the batch updated, can a study be whole.
		for uid := range studies {
			var st studyRecord
			found, err := getJSONTx(tx, bucketStudies, uid, &st)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			var d done
			if d.m[0], d.m[1], d.m[2], err = studyProgress(tx, &st); err != nil {
				return err
			}
			d.st = st
			finished = append(finished, d)
			if err := putJSONTx(tx, bucketStudies, st.StudyUID, st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return len(batch), err
	}
	for i, rec := range batch {
		if errs[i] != nil {
			in.m.deliveries.WithLabelValues("failed").Inc()
			in.lastDelivErr.Store(errs[i].Error())
			in.log.Warn("transfer: PACS delivery failed; will retry", "target", in.deliver.Target(), "sop", rec.SOPInstanceUID,
				"attempt", rec.Attempts+1, "refused", pacs.IsRefused(errs[i]), "err", errs[i])
		} else {
			in.m.deliveries.WithLabelValues("delivered").Inc()
		}
	}
	for _, p := range prune {
		os.Remove(p)
	}
	for _, d := range finished {
		in.studyMilestones(d.st, d.m)
	}
	return len(batch), nil
}

// backoff is min(max, min·2^(attempt-1)).
func backoff(min, max time.Duration, attempt int) time.Duration {
	d := min
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// IngestStatus is the hub's transfer state for /api/v1/status.
type IngestStatus struct {
	Target            string        `json:"target"` // "archive" or the PACS
	PendingDeliveries int           `json:"pending_deliveries"`
	LastDeliveryError string        `json:"last_delivery_error,omitempty"`
	BytesReceived     int64         `json:"bytes_received"`
	WireBytes         int64         `json:"wire_bytes"`
	CorruptChunks     int64         `json:"corrupt_chunks"`
	Duplicates        int64         `json:"duplicates"`
	Studies           []StudyStatus `json:"studies"`
}

// StudyStatus is one study as the hub sees it.
type StudyStatus struct {
	StudyUID    string    `json:"study_uid"`
	Device      string    `json:"device"`
	Modality    string    `json:"modality,omitempty"`
	Priority    string    `json:"priority,omitempty"`
	Expected    int       `json:"expected"`
	Stored      int       `json:"stored"`
	Delivered   int       `json:"delivered"`
	ManifestAt  time.Time `json:"manifest_at"`
	ReceivedAt  time.Time `json:"received_at,omitzero"`
	VerifiedAt  time.Time `json:"verified_at,omitzero"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// maxStatusStudies bounds Status: the most recent studies by manifest time.
const maxStatusStudies = 100

// Status reports deliveries and the most recent studies.
func (in *Ingest) Status() (IngestStatus, error) {
	s := IngestStatus{Target: "archive", BytesReceived: in.bytesReceived.Load(), WireBytes: in.wireBytes.Load(),
		CorruptChunks: in.corruptChunks.Load(), Duplicates: in.duplicates.Load(), LastDeliveryError: in.lastDelivErr.Load().(string)}
	if in.deliver != nil {
		s.Target = in.deliver.Target()
	}
	err := in.store.View(func(tx *durable.Tx) error {
		if b := tx.Bucket([]byte(bucketDelivery)); b != nil {
			s.PendingDeliveries = b.Stats().KeyN
		}
		b := tx.Bucket([]byte(bucketStudies))
		if b == nil {
			return nil
		}
		var all []studyRecord
		if err := b.ForEach(func(_, v []byte) error {
			var st studyRecord
			if err := jsonUnmarshal(v, &st); err != nil {
				return err
			}
			all = append(all, st)
			return nil
		}); err != nil {
			return err
		}
		sort.Slice(all, func(i, j int) bool { return all[i].ManifestAt.After(all[j].ManifestAt) })
		if len(all) > maxStatusStudies {
			all = all[:maxStatusStudies]
		}
		for _, st := range all {
			ss := StudyStatus{StudyUID: st.StudyUID, Device: st.Device, Modality: st.Modality, Priority: st.Priority,
				Expected: len(st.Expected), ManifestAt: st.ManifestAt, ReceivedAt: st.ReceivedAt,
				VerifiedAt: st.VerifiedAt, DeliveredAt: st.DeliveredAt}
			for sop := range st.Expected {
				var rec InstanceRecord
				ok, err := getJSONTx(tx, bucketInstances, sop, &rec)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				ss.Stored++
				if !rec.DeliveredAt.IsZero() {
					ss.Delivered++
				} else if rec.LastError != "" {
					ss.LastError = rec.LastError
				}
			}
			s.Studies = append(s.Studies, ss)
		}
		return nil
	})
	return s, err
}

// Instance returns the archive's record of one instance.
func (in *Ingest) Instance(sop string) (InstanceRecord, error) {
	var rec InstanceRecord
	err := in.store.GetJSON(bucketInstances, sop, &rec)
	if err == durable.ErrNotFound {
		return rec, errNotStored
	}
	return rec, err
}
