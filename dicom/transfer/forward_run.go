package transfer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"lifeline/dicom/spool"
	"lifeline/internal/durable"
)

// Study states: sync (send the manifest, learn what the hub has) → sending (upload
// what is missing) → sync again to confirm → acknowledged and forgotten. A study with
// a dead-lettered instance is blocked until an operator retries it. Before all that,
// while the study still arrives (not queued yet), it is receiving: its durable
// instances are uploaded, and nothing else is said to the hub.
type studyState int

const (
	studySync studyState = iota
	studySyncing
	studySending
	studyBlocked
	studyReceiving
)

func (s studyState) String() string {
	return [...]string{"syncing", "syncing", "sending", "blocked", "receiving"}[s]
}

type instState int

const (
	instPending instState = iota
	instInflight
	instDone
	instDead
)

type studyJob struct {
	seq      uint64
	study    spool.Study
	prio     Priority
	state    studyState
	reason   string
	added    time.Time
	nextTry  time.Time
	failures int
	// stalls counts the hub's receipts in a row that were incomplete and showed no
	// more stored than the one before: the study waits longer before each next
	// manifest, and is reported blocked from stallsBlocked on.
	stalls     int
	lastStored int // stored count of the last receipt; -1 before the first
	inst       []*instJob
	bytesTotal int64
	bytesDone  int64 // confirmed by the hub
	rate       float64
	lastAck    time.Time
}

type instJob struct {
	study    *studyJob
	inst     spool.Instance
	state    instState
	reason   string
	nextTry  time.Time
	attempts int
	sentEnd  int64 // furthest byte ever put on the wire in this run, to count re-sends
	// confirmed is how much of it the hub confirmed, counted in its study's bytesDone.
	confirmed int64
	// superseded: the spool holds other bytes for this UID now; this upload of the
	// old ones is left to end and then forgotten.
	superseded bool
	// url is the upload's path on the hub once created in this run; the box's
	// store has it only from its next commit (see uploadInstance).
	url string
	// createCut: a creation carrying the first chunk got no answer; the hub may
	// hold the chunk, so the next attempt asks before sending it again.
	createCut bool
}

type result struct {
	sj      *studyJob
	ij      *instJob // nil for a manifest sync
	receipt StudyReceipt
	dead    string
	err     error
}

// dispatchTick is how often Run looks for work whose back-off has run out.
const dispatchTick = 100 * time.Millisecond

// Run forwards studies until ctx ends. It returns nil on cancellation; transfers in
// flight stop where they are and resume from the hub's offset on the next Run.
func (f *Forwarder) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	results := make(chan result, f.cfg.Parallel)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	tick := time.NewTicker(dispatchTick)
	defer tick.Stop()
	inflight := 0
	var lastRefresh time.Time
	refresh := true
	for {
		if refresh || time.Since(lastRefresh) >= f.cfg.PollInterval {
			if err := f.refresh(); err != nil {
				f.log.Error("transfer: forwarder", "err", err)
			}
			lastRefresh, refresh = time.Now(), false
		}
		for _, job := range f.dispatch(f.cfg.Parallel - inflight) {
			inflight++
			wg.Go(func() { results <- job(ctx) })
		}
		select {
		case <-ctx.Done():
			return nil
		case r := <-results:
			inflight--
			f.handle(r)
		case <-tick.C:
		case <-f.wake:
			refresh = true
		case <-f.client.up:
			f.linkBack()
		}
	}
}

// dispatch picks up to free jobs, most urgent study first.
func (f *Forwarder) dispatch(free int) []func(context.Context) result {
	var jobs []func(context.Context) result
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if free <= 0 || now.Before(f.pausedTo) {
		return nil
	}
	for _, sj := range f.ordered() {
		if len(jobs) >= free {
			break
		}
		switch sj.state {
		case studySync:
			if now.Before(sj.nextTry) {
				continue
			}
			sj.state = studySyncing
			jobs = append(jobs, func(ctx context.Context) result { return f.sync(ctx, sj) })
		case studySending, studyReceiving:
			for _, ij := range sj.inst {
				if len(jobs) >= free {
					break
				}
				if e := f.early[ij.inst.SOPInstanceUID]; e != nil && e != ij && e.state == instInflight {
					continue // an upload of the UID's old bytes has not ended yet
				}
				if ij.state == instPending && !now.Before(ij.nextTry) {
					ij.state = instInflight
					jobs = append(jobs, func(ctx context.Context) result { return f.upload(ctx, ij) })
				}
			}
		}
	}
	if len(jobs) > 0 {
		f.state = "sending"
	}
	return jobs
}

// manifestOf lists a study as the hub expects it.
func manifestOf(sj *studyJob) Manifest {
	m := Manifest{StudyUID: sj.study.StudyUID, PatientID: sj.study.PatientID, PatientName: sj.study.PatientName,
		Modality: sj.study.Modality, CallingAE: sj.study.CallingAE, Priority: sj.prio.String()}
	for _, in := range sj.study.Instances {
		m.Instances = append(m.Instances, ManifestInstance{SOPInstanceUID: in.SOPInstanceUID, Size: in.Size, SHA256: in.SHA256})
	}
	return m
}

func (f *Forwarder) sync(ctx context.Context, sj *studyJob) result {
	rc, err := f.client.putManifest(ctx, manifestOf(sj))
	return result{sj: sj, receipt: rc, err: err}
}

// handle applies a finished job's outcome; it runs on Run's goroutine.
func (f *Forwarder) handle(r result) {
	if r.err != nil && errors.Is(r.err, context.Canceled) {
		return
	}
	if r.ij == nil {
		f.handleSync(r)
		return
	}
	f.mu.Lock()
	ij := r.ij
	sj := ij.study // a queued study may have adopted it while it was in flight
	if ij.superseded {
		if f.early[ij.inst.SOPInstanceUID] == ij {
			delete(f.early, ij.inst.SOPInstanceUID)
		}
		f.mu.Unlock()
		return
	}
	switch {
	case r.dead != "":
		ij.state, ij.reason = instDead, r.dead
		f.m.dead.Inc()
		f.log.Error("transfer: instance put on the dead-letter list", "study", sj.study.StudyUID, "sop", ij.inst.SOPInstanceUID, "reason", r.dead)
	case errors.Is(r.err, errConnReplaced):
		// Cut by the box itself for a new path: again at once, from the hub's offset.
		ij.state, ij.nextTry = instPending, time.Time{}
	case r.err != nil:
		ij.attempts++
		ij.state = instPending
		ij.nextTry = time.Now().Add(backoff(f.cfg.RetryMin, f.cfg.RetryMax, ij.attempts))
		f.noteFailure(r.err)
	default:
		ij.state = instDone
		f.noteSuccess()
		f.m.instances.Inc()
	}
	f.advance(sj)
	// An instance of a study still arriving is released once the study is queued
	// (refresh), so that the spool keeps it until the study's record holds it.
	queued := sj.state != studyReceiving
	f.mu.Unlock()
	if r.err == nil && r.dead == "" && f.rel != nil && queued {
		if err := f.rel.MarkForwarded(ij.inst.SOPInstanceUID); err != nil {
			f.log.Warn("transfer: spool could not release a forwarded instance", "sop", ij.inst.SOPInstanceUID, "err", err)
		}
	}
}

// advance moves a sending study on once none of its instances is pending or in flight.
func (f *Forwarder) advance(sj *studyJob) {
	if sj.state != studySending {
		return
	}
	dead := 0
	for _, ij := range sj.inst {
		switch ij.state {
		case instPending, instInflight:
			return
		case instDead:
			dead++
		}
	}
	if dead > 0 {
		sj.state, sj.reason = studyBlocked, fmt.Sprintf("%d instance(s) on the dead-letter list", dead)
		return
	}
	sj.state, sj.nextTry = studySync, time.Time{}
	if sj.stalls > 0 {
		sj.nextTry = time.Now().Add(backoff(f.cfg.RetryMin, f.cfg.RetryMax, sj.stalls))
	}
}

// stallsBlocked is how many stalled receipts in a row make a study show as blocked.
// It keeps being synced at the capped back-off, so it goes on by itself once the hub
// holds what it expects.
const stallsBlocked = 3

// noteReceipt counts a receipt that is incomplete and shows no progress as a stall,
// and says why in the study's reason once it is blocked.
func (f *Forwarder) noteReceipt(sj *studyJob, rc StudyReceipt) {
	if rc.Complete || rc.Stored > sj.lastStored {
		sj.stalls, sj.lastStored = 0, rc.Stored
		if sj.state != studyBlocked {
			sj.reason = ""
		}
		return
	}
	sj.stalls++
	if sj.stalls < stallsBlocked {
		return
	}
	own := map[string]bool{}
	for _, ij := range sj.inst {
		own[ij.inst.SOPInstanceUID] = true
	}
	var foreign []string
	for _, sop := range rc.Missing {
		if !own[sop] {
			foreign = append(foreign, sop)
		}
	}
	reason := fmt.Sprintf("the hub's receipt stays incomplete (%d of %d stored, %d missing)", rc.Stored, rc.Expected, len(rc.Missing))
	if len(foreign) > 0 {
		reason += fmt.Sprintf("; it expects %d instance(s) this box does not have, e.g. %s", len(foreign), foreign[0])
	}
	if sj.stalls == stallsBlocked {
		f.log.Error("transfer: study blocked: the hub's receipt stays incomplete; syncing it at a capped back-off",
			"study", sj.study.StudyUID, "stored", rc.Stored, "expected", rc.Expected, "missing", len(rc.Missing), "foreign", len(foreign))
	}
	sj.reason = reason
}

// noteFailure pauses all uploads after errors that are about the hub or the link,
// not about one instance, so a dead link is not hammered by every worker.
func (f *Forwarder) noteFailure(err error) {
	f.lastErr = err.Error()
	he, isHub := asHubError(err)
	if isHub && he.status < 500 && he.status != 403 {
		return
	}
	if time.Now().Before(f.pausedTo) {
		return // the same outage, met by another request already in flight
	}
	f.failures++
	f.pausedTo = time.Now().Add(backoff(f.cfg.RetryMin, f.cfg.RetryMax, f.failures))
	if isHub && he.status == 403 {
		f.state = "refused by hub"
	} else {
		f.state = "hub unreachable"
	}
	f.log.Warn("transfer: hub not usable; backing off", "state", f.state, "retry_in", time.Until(f.pausedTo).Round(time.Millisecond), "err", err)
}

// linkBack ends every back-off caused by the link once the pool made a connection
// after a failure: the first retry after an outage never waits for a timer.
func (f *Forwarder) linkBack() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pausedTo = time.Time{}
	for _, sj := range f.all() {
		if sj.state == studySync && sj.failures > 0 {
			sj.nextTry = time.Time{}
		}
		for _, ij := range sj.inst {
			if ij.state == instPending {
				ij.nextTry = time.Time{}
			}
		}
	}
	f.log.Info("transfer: a new connection to the hub is up, or the box moved to another hub or transport; resuming at once",
		"hub", f.cfg.Hub.Current(), "transport", f.client.transport())
}

func (f *Forwarder) noteSuccess() {
	if f.failures > 0 {
		f.log.Info("transfer: hub reachable again")
	}
	f.failures, f.lastErr, f.state = 0, "", "sending"
}

func (f *Forwarder) handleSync(r result) {
	sj := r.sj
	f.mu.Lock()
	if errors.Is(r.err, errConnReplaced) {
		sj.state, sj.nextTry = studySync, time.Time{}
		f.mu.Unlock()
		return
	}
	if r.err != nil {
		sj.failures++
		sj.state, sj.nextTry = studySync, time.Now().Add(backoff(f.cfg.RetryMin, f.cfg.RetryMax, sj.failures))
		f.noteFailure(r.err)
		f.mu.Unlock()
		return
	}
	f.noteSuccess()
	sj.failures = 0
	f.noteReceipt(sj, r.receipt)
	missing := map[string]bool{}
	for _, sop := range r.receipt.Missing {
		missing[sop] = true
	}
	var release []string
	for _, ij := range sj.inst {
		sop := ij.inst.SOPInstanceUID
		switch {
		case ij.state == instDead, ij.state == instInflight:
		case missing[sop] && ij.state == instDone:
			// The hub no longer has it (restored from backup?): send it again.
			f.log.Warn("transfer: hub is missing an instance it had confirmed; sending it again", "sop", sop)
			ij.state = instPending
			sj.bytesDone -= ij.inst.Size
			ij.confirmed = 0
			if err := f.store.Update(func(tx *durable.Tx) error { return deleteTx(tx, bucketBoxInstances, sop) }); err != nil {
				f.log.Error("transfer: reset instance state", "sop", sop, "err", err)
			}
		case !missing[sop] && ij.state != instDone:
			bi, err := f.loadBox(sop)
			if err != nil {
				f.log.Error("transfer: read instance state", "sop", sop, "err", err)
				continue
			}
			ij.state = instDone
			sj.bytesDone += ij.inst.Size - ij.confirmed
			ij.confirmed = ij.inst.Size
			bi.StudyUID, bi.SHA256, bi.Done, bi.Offset = sj.study.StudyUID, ij.inst.SHA256, true, ij.inst.Size
			if err := f.saveBox(sop, bi); err != nil {
				f.log.Error("transfer: record instance done", "sop", sop, "err", err)
			}
			release = append(release, sop)
		}
	}
	f.mu.Unlock()
	for _, sop := range release {
		if f.rel != nil {
			if err := f.rel.MarkForwarded(sop); err != nil {
				f.log.Warn("transfer: spool could not release a forwarded instance", "sop", sop, "err", err)
			}
		}
	}
	if r.receipt.Complete {
		if q := r.receipt.Quarantined; len(q) > 0 {
			// Held durably, so the box is done; the hub's operator settles the clash.
			f.log.Warn("transfer: the hub holds instances of this study in quarantine: their UIDs are archived with other content",
				"study", sj.study.StudyUID, "quarantined", len(q), "first", q[0])
		}
		f.finishStudy(sj)
		return
	}
	f.mu.Lock()
	sj.state = studySending
	f.advance(sj)
	f.mu.Unlock()
}

// finishStudy acknowledges a study the hub confirmed whole and forgets its state.
func (f *Forwarder) finishStudy(sj *studyJob) {
	err := f.store.Update(func(tx *durable.Tx) error {
		if err := durable.AckTx(tx, f.queue, sj.seq); err != nil {
			return err
		}
		for _, in := range sj.study.Instances {
			if err := deleteTx(tx, bucketBoxInstances, in.SOPInstanceUID); err != nil {
				return err
			}
		}
		return nil
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.log.Error("transfer: acknowledge forwarded study", "study", sj.study.StudyUID, "err", err)
		sj.state, sj.nextTry = studySync, time.Now().Add(f.cfg.RetryMax)
		return
	}
	delete(f.studies, sj.seq)
	f.m.studies.Inc()
	f.log.Info("transfer: study forwarded; the hub holds every instance", "study", sj.study.StudyUID,
		"instances", len(sj.inst), "bytes", sj.bytesTotal, "took", time.Since(sj.added).Round(time.Millisecond))
	if len(f.studies) == 0 && len(f.receiving) == 0 {
		f.state = "idle"
	}
}

func deleteTx(tx *durable.Tx, bucket, key string) error {
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.Delete([]byte(key))
}
