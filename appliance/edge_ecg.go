package appliance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"lifeline/dicom"
	"lifeline/stream/vitals"
	"lifeline/telemetry"
	"lifeline/telemetry/record"
)

// ecgHistoryKeep is how much of every ECG lead the box holds in memory, so that a
// 12-lead request can be answered with the ECGSeconds just before it: the span plus
// room for the blocks of the last second still on their way. 12 leads at 500 Hz for
// 12 s is under 300 KB of samples.
const ecgHistoryKeep = (vitals.ECGSeconds + 2) * time.Second

// ecgFresh is how recent the newest ECG block must be for the history to stand for
// "now": a monitor that stopped sending a moment ago has nothing current to give.
const ecgFresh = 2 * time.Second

// ecgHistory is the last ecgHistoryKeep of every ECG lead the monitors sent.
type ecgHistory struct {
	mu   sync.Mutex
	msgs []telemetry.Message // ECG lead blocks in arrival order
}

// add keeps m if it is a block of an ECG lead, and forgets what is older than
// ecgHistoryKeep before it.
func (h *ecgHistory) add(m telemetry.Message) {
	w, ok := m.Event.(*telemetry.Wave)
	if !ok || !slices.Contains(telemetry.ECG12, w.Code) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, m)
	horizon := w.End().Add(-ecgHistoryKeep)
	drop := 0
	for drop < len(h.msgs) && h.msgs[drop].Event.(*telemetry.Wave).End().Before(horizon) {
		drop++
	}
	if drop > 0 {
		h.msgs = slices.Delete(h.msgs, 0, drop)
	}
}

// last returns the blocks holding the span just before now, and where that span
// ends, when every lead the monitor sends was on and complete throughout it: no
// block flagged invalid (lead off) or after a loss, no sample missing, and the
// newest block at most ecgFresh old. Otherwise it says why not, and the caller
// records the next span instead.
func (h *ecgHistory) last(span time.Duration, now time.Time) (msgs []telemetry.Message, end time.Time, err error) {
	h.mu.Lock()
	msgs = slices.Clone(h.msgs)
	h.mu.Unlock()
	if len(msgs) == 0 {
		return nil, time.Time{}, errors.New("no ECG in the last seconds")
	}
	if age := now.Sub(msgs[len(msgs)-1].Event.(*telemetry.Wave).ReceiveTime); age > ecgFresh {
		return nil, time.Time{}, fmt.Errorf("the newest ECG block is %v old", age.Round(time.Millisecond))
	}
	series, err := record.LayOut(msgs, time.Time{}, time.Time{})
	if err != nil {
		return nil, time.Time{}, err
	}
	end = series.Start.Add(time.Duration(float64(len(series.Samples[0])) / series.Rate * float64(time.Second)))
	from := end.Add(-span)
	for _, m := range msgs {
		w := m.Event.(*telemetry.Wave)
		if !w.End().After(from) {
			continue
		}
		if w.Invalid {
			return nil, time.Time{}, fmt.Errorf("lead %s was off at %s", w.Code, w.Start.Format(time.TimeOnly))
		}
		if w.Gap {
			return nil, time.Time{}, fmt.Errorf("samples of lead %s were lost before %s", w.Code, w.Start.Format(time.TimeOnly))
		}
	}
	in, err := record.LayOut(msgs, from, end)
	switch {
	case err != nil:
		return nil, time.Time{}, err
	case !in.Start.Equal(from):
		return nil, time.Time{}, fmt.Errorf("all leads together cover only %v", end.Sub(in.Start).Round(time.Millisecond))
	case in.Missing > 0:
		return nil, time.Time{}, fmt.Errorf("%d samples missing", in.Missing)
	}
	return msgs, end, nil
}

// Run carries out the acquisitions, up to maxECGJobs at once: each records its own
// next 10 s when the history cannot answer, so a second doctor's request is not made
// to wait for the first's. It also keeps the history.
func (d *crewDesk) Run(ctx context.Context) error {
	var running sync.WaitGroup
	defer running.Wait()
	leads := d.e.bus.Subscribe("ecg-history", 16384)
	defer leads.Unsubscribe()
	leadsC := leads.C()
	slots := make(chan struct{}, maxECGJobs)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-leadsC:
			if !ok { // only Unsubscribe closes it; requests then record the next span
				leadsC = nil
				continue
			}
			d.history.add(m)
		case job := <-d.jobs:
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			running.Add(1)
			go func() {
				defer func() { <-slots; running.Done() }()
				d.acquire(ctx, job)
			}()
		}
	}
}

// acquire makes a DICOM 12-lead ECG of vitals.ECGSeconds of every ECG lead, puts it
// into the spool as a complete study, and lets the forwarder send it first (ECG
// studies are STAT): the hospital has it as soon as the link carries it. The span is
// the one just before the request when the box holds it whole (every lead on and
// complete), so that the doctor has it in about the time the link takes; otherwise
// the box records the next span, as an electrocardiograph does.
func (d *crewDesk) acquire(ctx context.Context, job ecgJob) {
	span := vitals.ECGSeconds * time.Second
	msgs, end, err := d.history.last(span, time.Now())
	if err == nil {
		sop, study, err := d.store(msgs, end.Add(-span), span)
		d.finishECG(ctx, job, sop, study, err)
		return
	}
	d.e.log.Info("12-lead ECG: recording the next 10 s, the last 10 s cannot serve", "ref", job.ref, "why", err)
	d.report(ctx, job, vitals.ECGAcquiring, "", "", "")
	sub := d.e.bus.Subscribe("ecg-acquisition", 16384)
	defer sub.Unsubscribe()
	deadline := time.NewTimer(span + ecgAcquireWait)
	defer deadline.Stop()
	msgs = nil
	first := map[telemetry.Code]time.Time{}
	last := map[telemetry.Code]time.Time{}
	covered := func() bool {
		if len(first) == 0 {
			return false
		}
		var start time.Time
		for _, t := range first {
			start = later(start, t)
		}
		for _, t := range last {
			if t.Before(start.Add(span)) {
				return false
			}
		}
		return true
	}
collect:
	for !covered() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			break collect
		case m, ok := <-sub.C():
			if !ok {
				break collect
			}
			w, isWave := m.Event.(*telemetry.Wave)
			if !isWave || !slices.Contains(telemetry.ECG12, w.Code) {
				continue
			}
			msgs = append(msgs, m)
			if _, ok := first[w.Code]; !ok {
				first[w.Code] = w.Start
			}
			last[w.Code] = w.End()
		}
	}
	var start time.Time
	for _, t := range first {
		start = later(start, t)
	}
	sop, study, err := d.store(msgs, start, span)
	d.finishECG(ctx, job, sop, study, err)
}

// store makes span of the blocks from start into a DICOM ECG in the spool and queues it.
func (d *crewDesk) store(msgs []telemetry.Message, start time.Time, span time.Duration) (sop, study string, err error) {
	if len(msgs) == 0 {
		return "", "", errors.New("no ECG arrived from the monitor in the acquisition time: check the monitor and its ECG cable")
	}
	opt := d.e.ecgOptions()
	opt.StudyInstanceUID = dicom.NewUID()
	opt.From, opt.To = start, start.Add(span)
	file, series, err := record.ExportECG(msgs, opt, time.Now())
	if err != nil {
		return "", "", err
	}
	if got := float64(len(series.Samples[0])) / series.Rate; got < 0.9*span.Seconds() {
		return "", "", fmt.Errorf("only %.1f s of ECG arrived in the acquisition time", got)
	}
	meta, offset, err := dicom.ReadMeta(bufio.NewReader(bytes.NewReader(file)))
	if err != nil {
		return "", "", fmt.Errorf("the ECG made on the box does not read back: %w", err)
	}
	w, err := d.e.spool.Begin(dicom.Incoming{SOPClassUID: meta.SOPClassUID, SOPInstanceUID: meta.SOPInstanceUID,
		TransferSyntaxUID: meta.TransferSyntaxUID, CallingAE: "LIFELINE-ECG"})
	if err != nil {
		return "", "", err
	}
	if _, err := w.Write(file[offset:]); err != nil {
		w.Abort()
		return "", "", err
	}
	if err := w.Commit(); err != nil {
		return "", "", err
	}
	switch queued, err := d.e.spool.CompleteNow(opt.StudyInstanceUID); {
	case err != nil:
		return "", "", err
	case !queued:
		return "", "", fmt.Errorf("the ECG %s is stored on the box but could not be queued for the hospital", meta.SOPInstanceUID)
	}
	if fw, ok := d.e.forwarder.get(); ok {
		fw.Notify()
	}
	d.e.log.Info("12-lead ECG acquired and queued STAT for the hospital", "sop", meta.SOPInstanceUID,
		"leads", len(series.Leads), "seconds", float64(len(series.Samples[0]))/series.Rate,
		"from", series.Start.Format(time.RFC3339Nano), "missing_samples", series.Missing)
	return meta.SOPInstanceUID, opt.StudyInstanceUID, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
