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

// DefaultDeliveryLease is how long a hub's claim on a delivery holds when hubs share
// their state (IngestConfig.DeliveryLease): long beside one batch's delivery to a
// PACS on the hospital's network, short beside how long a study may wait for its
// delivery after a hub died.
const DefaultDeliveryLease = time.Minute

// deliverDue sends one batch of due instances and returns how many it tried.
//
// With a state that several hubs share and an archive they all reach (a shared_dir),
// any of them may deliver an instance, so each batch is claimed first
// (hubstate.DeliveryClaims) and its delivery ends before three quarters of the
// claim's lease: a delivery still running when another hub could take the claim
// over would be made twice. One that ran out is recorded as failed and tried again.
func (in *Ingest) deliverDue(ctx context.Context) (int, error) {
	batch, pending, err := in.dueBatch(ctx)
	in.m.pending.Set(float64(pending))
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	items := make([]pacs.Instance, len(batch))
	for i, rec := range batch {
		items[i] = pacs.Instance{SOPInstanceUID: rec.SOPInstanceUID, SOPClassUID: rec.SOPClassUID, StudyUID: rec.StudyUID,
			TransferSyntax: rec.TransferSyntax, Path: rec.Path, Size: rec.Size}
	}
	dctx := ctx
	if _, claimed := in.state.(hubstate.DeliveryClaims); claimed {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, in.cfg.DeliveryLease*3/4)
		defer cancel()
	}
	errs := in.deliver.Deliver(dctx, items)
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

// dueBatch claims the next batch of deliveries when the state is shared
// (hubstate.DeliveryClaims), and reads it otherwise, the hub being alone.
func (in *Ingest) dueBatch(ctx context.Context) ([]hubstate.Instance, int, error) {
	if c, ok := in.state.(hubstate.DeliveryClaims); ok {
		return c.ClaimDeliveries(ctx, time.Now(), in.cfg.DeliveryLease, in.cfg.DeliveryBatch)
	}
	return in.state.DueDeliveries(ctx, time.Now(), in.cfg.DeliveryBatch)
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
	AppendsInProgress int           `json:"appends_in_progress"`
	Studies           []StudyStatus `json:"studies"`
	// Quarantined lists copies held apart for an operator (at most
	// maxStatusQuarantine of QuarantinedTotal): their SOP Instance UID is archived
	// with other content. Neither copy is lost; the quarantined one is not delivered.
	Quarantined      []QuarantinedCopy `json:"quarantined,omitempty"`
	QuarantinedTotal int               `json:"quarantined_total"`
}

// QuarantinedCopy is one instance held in quarantine, beside the archived copy it
// clashes with.
type QuarantinedCopy struct {
	SOPInstanceUID string    `json:"sop_instance_uid"`
	StudyUID       string    `json:"study_uid"`
	Device         string    `json:"device"`
	SHA256         string    `json:"sha256"`
	Path           string    `json:"path"`
	VerifiedAt     time.Time `json:"verified_at"`
	ArchivedSHA256 string    `json:"archived_sha256"`
	ArchivedDevice string    `json:"archived_device"`
}

// StudyStatus is one study as the hub sees it.
type StudyStatus struct {
	StudyUID    string    `json:"study_uid"`
	Device      string    `json:"device"`
	Modality    string    `json:"modality,omitempty"`
	Priority    string    `json:"priority,omitempty"`
	Expected    int       `json:"expected"`
	Stored      int       `json:"stored"`
	Quarantined int       `json:"quarantined,omitempty"`
	Delivered   int       `json:"delivered"`
	ManifestAt  time.Time `json:"manifest_at"`
	ReceivedAt  time.Time `json:"received_at,omitzero"`
	VerifiedAt  time.Time `json:"verified_at,omitzero"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// maxStatusStudies bounds Status: the most recent studies by manifest time.
const maxStatusStudies = 100

// maxStatusQuarantine bounds the quarantined copies Status lists.
const maxStatusQuarantine = 100

// Status reports deliveries and the most recent studies.
func (in *Ingest) Status() (IngestStatus, error) {
	ctx := context.Background()
	s := IngestStatus{Target: "archive", BytesReceived: in.bytesReceived.Load(), WireBytes: in.wireBytes.Load(),
		CorruptChunks: in.corruptChunks.Load(), Duplicates: in.duplicates.Load(), AppendsInProgress: in.appendSlots.inUse(), LastDeliveryError: in.lastDelivErr.Load().(string)}
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
			if inst.Quarantined {
				ss.Quarantined++
			}
			if !inst.DeliveredAt.IsZero() {
				ss.Delivered++
			} else if inst.LastError != "" {
				ss.LastError = inst.LastError
			}
		}
		s.Studies = append(s.Studies, ss)
	}
	held, total, err := in.state.Quarantine(ctx, maxStatusQuarantine)
	if err != nil {
		return s, err
	}
	s.QuarantinedTotal = total
	for _, q := range held {
		s.Quarantined = append(s.Quarantined, QuarantinedCopy{SOPInstanceUID: q.SOPInstanceUID, StudyUID: q.StudyUID,
			Device: q.Device, SHA256: q.SHA256, Path: q.Path, VerifiedAt: q.VerifiedAt, ArchivedSHA256: q.ClashSHA256,
			ArchivedDevice: q.ClashDevice})
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
