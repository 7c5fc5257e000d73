package transfer

import (
	"context"
	"errors"
	"os"
	"time"

	"lifeline/dicom/pacs"
	"lifeline/internal/hubstate"
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
	batch, pending, err := in.state.DueDeliveries(ctx, time.Now(), in.cfg.DeliveryBatch)
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
	now := time.Now().UTC()
	outcomes := make([]hubstate.DeliveryOutcome, len(batch))
	for i, rec := range batch {
		outcomes[i] = hubstate.DeliveryOutcome{SOPInstanceUID: rec.SOPInstanceUID, At: now, ForgetPath: in.cfg.PruneAfterDelivery}
		if errs[i] != nil {
			outcomes[i] = hubstate.DeliveryOutcome{SOPInstanceUID: rec.SOPInstanceUID, At: now, Err: errs[i].Error(),
				RetryAt: now.Add(backoff(in.cfg.RetryMin, in.cfg.RetryMax, rec.Attempts+1))}
		}
	}
	finished, err := in.state.RecordDeliveries(ctx, outcomes)
	if err != nil {
		return len(batch), err
	}
	for i, rec := range batch {
		if errs[i] != nil {
			in.m.deliveries.WithLabelValues("failed").Inc()
			in.lastDelivErr.Store(errs[i].Error())
			in.log.Warn("transfer: PACS delivery failed; will retry", "target", in.deliver.Target(), "sop", rec.SOPInstanceUID,
				"attempt", rec.Attempts+1, "refused", pacs.IsRefused(errs[i]), "err", errs[i])
			continue
		}
		in.m.deliveries.WithLabelValues("delivered").Inc()
		if in.cfg.PruneAfterDelivery {
			os.Remove(rec.Path)
		}
	}
	for _, st := range finished {
		in.studyMilestones(st)
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
	ctx := context.Background()
	s := IngestStatus{Target: "archive", BytesReceived: in.bytesReceived.Load(), WireBytes: in.wireBytes.Load(),
		CorruptChunks: in.corruptChunks.Load(), Duplicates: in.duplicates.Load(), LastDeliveryError: in.lastDelivErr.Load().(string)}
	if in.deliver != nil {
		s.Target = in.deliver.Target()
	}
	var err error
	if _, s.PendingDeliveries, err = in.state.DueDeliveries(ctx, time.Time{}, 0); err != nil {
		return s, err
	}
	recent, err := in.state.RecentStudies(ctx, maxStatusStudies)
	if err != nil {
		return s, err
	}
	for _, v := range recent {
		ss := StudyStatus{StudyUID: v.StudyUID, Device: v.Device, Modality: v.Modality, Priority: v.Priority,
			Expected: len(v.Expected), Stored: len(v.Archived), ManifestAt: v.ManifestAt, ReceivedAt: v.ReceivedAt,
			VerifiedAt: v.VerifiedAt, DeliveredAt: v.DeliveredAt}
		for _, inst := range v.Archived {
			if !inst.DeliveredAt.IsZero() {
				ss.Delivered++
			} else if inst.LastError != "" {
				ss.LastError = inst.LastError
			}
		}
		s.Studies = append(s.Studies, ss)
	}
	return s, nil
}

// Instance returns the archive's record of one instance.
func (in *Ingest) Instance(sop string) (InstanceRecord, error) {
	rec, err := in.state.Instance(context.Background(), sop)
	if errors.Is(err, hubstate.ErrNotFound) {
		return rec, errNotStored
	}
	return rec, err
}
