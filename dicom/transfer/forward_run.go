package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"lifeline/dicom/spool"
	"lifeline/internal/durable"
)

// Study states: sync (send the manifest, learn what the hub has) → sending (upload
// what is missing) → sync again to confirm → acknowledged and forgotten. A study with
// a dead-lettered instance is blocked until an operator retries it.
type studyState int

const (
	studySync studyState = iota
	studySyncing
	studySending
	studyBlocked
)

func (s studyState) String() string {
	return [...]string{"syncing", "syncing", "sending", "blocked"}[s]
}

type instState int

const (
	instPending instState = iota
	instInflight
	instDone
	instDead
)

type studyJob struct {
	seq        uint64
	study      spool.Study
	prio       Priority
	state      studyState
	reason     string
	added      time.Time
	nextTry    time.Time
	failures   int
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
		case studySending:
			for _, ij := range sj.inst {
				if len(jobs) >= free {
					break
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
	ij, sj := r.ij, r.sj
	switch {
	case r.dead != "":
		ij.state, ij.reason = instDead, r.dead
		f.m.dead.Inc()
		f.log.Error("transfer: instance put on the dead-letter list", "study", sj.study.StudyUID, "sop", ij.inst.SOPInstanceUID, "reason", r.dead)
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
	f.mu.Unlock()
	if r.err == nil && r.dead == "" && f.rel != nil {
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
}

// noteFailure pauses all uploads after errors that are about the hub or the link,
// not about one instance, so a dead link is not hammered by every worker.
func (f *Forwarder) noteFailure(err error) {
	f.lastErr = err.Error()
	he, isHub := asHubError(err)
	if isHub && he.status < 500 && he.status != 403 {
		return
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

func (f *Forwarder) noteSuccess() {
	if f.failures > 0 {
		f.log.Info("transfer: hub reachable again")
	}
	f.failures, f.lastErr, f.state = 0, "", "sending"
}

func (f *Forwarder) handleSync(r result) {
	sj := r.sj
	f.mu.Lock()
	if r.err != nil {
		sj.failures++
		sj.state, sj.nextTry = studySync, time.Now().Add(backoff(f.cfg.RetryMin, f.cfg.RetryMax, sj.failures))
		f.noteFailure(r.err)
		f.mu.Unlock()
		return
	}
	f.noteSuccess()
	sj.failures = 0
	missing := map[string]bool{}
	for _, sop := range r.receipt.Missing {
		missing[sop] = true
	}
	var release []string
	for _, ij := range sj.inst {
		sop := ij.inst.SOPInstanceUID
		switch {
		case ij.state == instDead:
		case missing[sop] && ij.state == instDone:
			// The hub no longer has it (restored from backup?): send it again.
			f.log.Warn("transfer: hub is missing an instance it had confirmed; sending it again", "sop", sop)
			ij.state = instPending
			sj.bytesDone -= ij.inst.Size
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
			sj.bytesDone += ij.inst.Size - bi.Offset
			bi.StudyUID, bi.Done, bi.Offset = sj.study.StudyUID, true, ij.inst.Size
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
	if len(f.studies) == 0 {
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

// progress records n more bytes confirmed by the hub for sj and updates its rate
// (an exponentially weighted average over about three seconds).
func (f *Forwarder) progress(sj *studyJob, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sj.bytesDone += n
	now := time.Now()
	if sj.lastAck.IsZero() {
		sj.lastAck = now
		return
	}
	dt := max(now.Sub(sj.lastAck).Seconds(), 1e-3)
	w := 1 - math.Exp(-dt/3)
	sj.rate += w * (float64(n)/dt - sj.rate)
	sj.lastAck = now
}

// upload sends one instance, resuming from wherever the hub stands.
func (f *Forwarder) upload(ctx context.Context, ij *instJob) result {
	r := result{sj: ij.study, ij: ij}
	r.dead, r.err = f.uploadInstance(ctx, ij)
	return r
}

func (f *Forwarder) uploadInstance(ctx context.Context, ij *instJob) (dead string, err error) {
	inst := ij.inst
	sop := inst.SOPInstanceUID
	bi, err := f.loadBox(sop)
	if err != nil {
		return "", err
	}
	bi.StudyUID = inst.StudyUID
	file, err := os.Open(inst.Path)
	if errors.Is(err, os.ErrNotExist) {
		return f.deadLetter(sop, bi, "spool file "+inst.Path+" is missing")
	}
	if err != nil {
		return "", err
	}
	defer file.Close()
	if fi, err := file.Stat(); err != nil {
		return "", err
	} else if fi.Size() != inst.Size {
		return f.deadLetter(sop, bi, fmt.Sprintf("spool file %s has %d bytes, its record says %d", inst.Path, fi.Size(), inst.Size))
	}

	var st uploadState
	if bi.URL != "" {
		st, err = f.client.offset(ctx, bi.URL)
		if he, ok := asHubError(err); ok && he.is(ProblemUnknownUpload) {
			bi.URL, err = "", nil
		}
		if err != nil {
			return "", err
		}
	}
	if bi.URL == "" {
		if st, err = f.client.create(ctx, inst); err != nil {
			if he, ok := asHubError(err); ok && he.permanent() {
				return f.deadLetter(sop, bi, he.Error())
			}
			return "", err
		}
	}
	switch {
	case st.offset == 0 && bi.Offset > 0:
		f.restartsFromZero.Add(1)
		f.m.restarts.Inc()
		f.log.Warn("transfer: hub lost an upload; starting it again from byte 0", "sop", sop, "had", bi.Offset)
	case st.offset < bi.Offset:
		f.log.Warn("transfer: hub holds less of an upload than it confirmed", "sop", sop, "confirmed", bi.Offset, "now", st.offset)
	}
	f.progress(ij.study, st.offset-bi.Offset)
	bi.URL, bi.Offset = st.url, st.offset
	if err := f.saveBox(sop, bi); err != nil {
		return "", err
	}

	compress := !f.cfg.NoCompression && (inst.TransferSyntax == "" || compressible(inst.TransferSyntax))
	buf := make([]byte, f.cfg.ChunkSize)
	digestRetries := 0
	for !st.complete {
		off := st.offset
		n := int(min(int64(len(buf)), inst.Size-off))
		if _, err := file.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return "", fmt.Errorf("read spool file %s: %w", inst.Path, err)
		}
		end := off + int64(n)
		if again := min(end, ij.sentEnd) - off; again > 0 {
			f.resent.Add(again)
			f.m.resent.Add(float64(again))
		}
		ij.sentEnd = max(ij.sentEnd, end)
		next, wire, err := f.client.appendChunk(ctx, sop, st.url, off, buf[:n], end == inst.Size, compress)
		f.wireBytes.Add(int64(wire))
		f.m.wire.Add(float64(wire))
		if err != nil {
			he, ok := asHubError(err)
			switch {
			case !ok:
				return "", err
			case he.is(ProblemChunkDigest) && digestRetries < 5:
				digestRetries++
				f.log.Warn("transfer: hub found a chunk corrupt; sending it again", "sop", sop, "offset", off)
				continue
			case he.is(ProblemOffset) && he.offset >= 0:
				f.progress(ij.study, he.offset-st.offset)
				st.offset = he.offset
				bi.Offset = he.offset
				continue
			case he.is(ProblemUnknownUpload):
				bi.URL = ""
				f.saveBox(sop, bi)
				return "", err
			case he.is(ProblemDigest):
				bi.DigestFailures++
				bi.URL, bi.Offset = "", 0
				f.progress(ij.study, -off)
				if bi.DigestFailures >= f.cfg.MaxDigestFailures {
					return f.deadLetter(sop, bi, fmt.Sprintf("hub found the whole instance corrupt %d times: %v", bi.DigestFailures, he))
				}
				f.saveBox(sop, bi)
				return "", err
			case he.permanent():
				return f.deadLetter(sop, bi, he.Error())
			}
			return "", err
		}
		digestRetries = 0
		f.m.chunks.Inc()
		f.progress(ij.study, next.offset-off)
		st = next
		bi.Offset = st.offset
		if st.complete {
			bi.Done = true
		}
		if err := f.saveBox(sop, bi); err != nil {
			return "", err
		}
	}
	if !bi.Done {
		bi.Done = true
		if err := f.saveBox(sop, bi); err != nil {
			return "", err
		}
	}
	return "", nil
}

func (f *Forwarder) deadLetter(sop string, bi boxInstance, reason string) (string, error) {
	bi.Dead, bi.DeadReason, bi.DeadAt = true, reason, time.Now().UTC()
	if err := f.saveBox(sop, bi); err != nil {
		return "", err
	}
	return reason, nil
}
