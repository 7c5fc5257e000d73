package audit

import (
	"context"
	"maps"
	"sync"
	"time"
)

// Observer takes observations; *Log is one.
type Observer interface {
	Audit(event string, fields map[string]any)
}

// Repeats audits observations that a stranger can repeat at will (a wrong enrolment
// code, a refused sign-in) without letting their rate set the audit log's: one
// client sending 947 wrong codes a second got as many fsynced lines, 14 GB a day.
//
// The first event of a kind from a source (a client address) is audited at once, as
// Audit would. Events of that kind from that source within the next Every are only
// counted; when the interval ends, one summary line says how many there were, with
// the fields of the latest, and a new interval begins. A source quiet for a whole
// interval is forgotten, so its next event is audited at once again.
//
// Repeats is for observations only. Security actions that succeed are recorded one
// by one with Log.Record, fail-closed, and never pass through here.
type Repeats struct {
	to    Observer
	every time.Duration
	max   int
	now   func() time.Time

	mu   sync.Mutex
	open map[repeatKey]*repeat
}

type repeatKey struct{ event, source string }

// repeat is one source's current interval for one kind of event.
type repeat struct {
	since  time.Time      // when the interval began (the event audited at once)
	count  int            // events since, not yet written
	latest map[string]any // the fields of the latest of them
}

// RepeatsConfig configures NewRepeats. Zero values mean the defaults.
type RepeatsConfig struct {
	// Every is the interval of the summary lines (default 1 min).
	Every time.Duration
	// Sources bounds the sources tracked at once (default 4096): beyond it, events
	// from new sources are counted together under the source OtherSources, so a
	// stranger with many addresses can grow neither the table nor the log.
	Sources int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// OtherSources is the source of summary lines for sources beyond RepeatsConfig.Sources.
const OtherSources = "other sources"

// NewRepeats returns a Repeats writing to to. Run it to write its summaries.
func NewRepeats(to Observer, cfg RepeatsConfig) *Repeats {
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	if cfg.Sources <= 0 {
		cfg.Sources = 4096
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Repeats{to: to, every: cfg.Every, max: cfg.Sources, now: cfg.Now, open: make(map[repeatKey]*repeat)}
}

// Audit audits event from source at once when it is the first of its kind from
// source in an interval, and otherwise counts it for the interval's summary line.
// fields must not be changed afterwards.
func (r *Repeats) Audit(event, source string, fields map[string]any) {
	now := r.now()
	r.mu.Lock()
	k := repeatKey{event, source}
	rep := r.open[k]
	if rep == nil && len(r.open) >= r.max {
		k.source = OtherSources
		rep = r.open[k]
	}
	if rep != nil {
		rep.count++
		rep.latest = fields
		r.mu.Unlock()
		return
	}
	r.open[k] = &repeat{since: now}
	r.mu.Unlock()
	if k.source == OtherSources {
		fields = withSource(fields, k.source)
	}
	r.to.Audit(event, fields)
}

// Flush writes the summary line of every interval that has ended, and of every
// interval when all is set (on shutdown), and forgets sources that were quiet.
func (r *Repeats) Flush(all bool) {
	now := r.now()
	type line struct {
		event  string
		fields map[string]any
	}
	var lines []line
	r.mu.Lock()
	for k, rep := range r.open {
		if !all && now.Sub(rep.since) < r.every {
			continue
		}
		if rep.count == 0 {
			delete(r.open, k)
			continue
		}
		fields := maps.Clone(rep.latest)
		if fields == nil {
			fields = map[string]any{}
		}
		if k.source == OtherSources {
			fields = withSource(fields, k.source)
		}
		fields["repeated"] = rep.count
		fields["since"] = rep.since.UTC().Format(time.RFC3339Nano)
		lines = append(lines, line{k.event, fields})
		rep.since, rep.count, rep.latest = now, 0, nil
	}
	r.mu.Unlock()
	for _, l := range lines {
		r.to.Audit(l.event, l.fields)
	}
}

// Run writes the summaries as their intervals end, until ctx ends; then it writes
// what is left and returns nil. Stop it before closing the log it writes to.
func (r *Repeats) Run(ctx context.Context) error {
	tick := time.NewTicker(max(r.every/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Flush(true)
			return nil
		case <-tick.C:
			r.Flush(false)
		}
	}
}

// withSource returns fields with "source" set, copied so the caller's map stays as
// it was.
func withSource(fields map[string]any, source string) map[string]any {
	out := maps.Clone(fields)
	if out == nil {
		out = map[string]any{}
	}
	out["source"] = source
	return out
}
