package send

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Report shows progress while sending (a bar on a terminal, a line every few seconds
// otherwise) and prints the summary at the end.
type Report struct {
	w          io.Writer
	tty        bool
	total      int
	totalBytes int64
	start      time.Time
	lastLine   time.Time

	sent     int
	bytes    int64
	studies  map[string]bool
	failures []Outcome
}

// NewReport starts a report for instances; tty selects the progress bar.
func NewReport(w io.Writer, tty bool, instances []Instance) *Report {
	r := &Report{w: w, tty: tty, total: len(instances), start: time.Now(), studies: map[string]bool{}}
	for _, in := range instances {
		r.totalBytes += in.DatasetSize
	}
	return r
}

// Add records one outcome and updates the progress display.
func (r *Report) Add(o Outcome) {
	if o.Sent() {
		r.sent++
		r.bytes += o.Instance.DatasetSize
		r.studies[o.Instance.StudyUID] = true
	} else {
		r.failures = append(r.failures, o)
	}
	done := r.sent + len(r.failures)
	switch {
	case r.tty:
		const width = 30
		filled := width * done / max(r.total, 1)
		fmt.Fprintf(r.w, "\r[%s%s] %d/%d instances, %s, %s/s ", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
			done, r.total, mb(r.bytes), mb(int64(float64(r.bytes)/max(time.Since(r.start).Seconds(), 0.001))))
	case time.Since(r.lastLine) >= 2*time.Second || done == r.total:
		r.lastLine = time.Now()
		fmt.Fprintf(r.w, "sent %d/%d instances (%s of %s), %d failed\n", r.sent, r.total, mb(r.bytes), mb(r.totalBytes), len(r.failures))
	}
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// Failed reports whether any instance was not stored.
func (r *Report) Failed() bool { return len(r.failures) > 0 }

// Summary prints what was sent, what failed and what was skipped and why.
func (r *Report) Summary(skipped []Skipped) {
	if r.tty {
		fmt.Fprintln(r.w)
	}
	el := time.Since(r.start)
	fmt.Fprintf(r.w, "sent %d instances of %d studies, %s in %.1fs\n", r.sent, len(r.studies), mb(r.bytes), el.Seconds())
	if len(r.failures) > 0 {
		fmt.Fprintf(r.w, "failed %d instances:\n", len(r.failures))
		for _, f := range r.failures {
			fmt.Fprintf(r.w, "  %s: %v\n", f.Instance.Path, f.Err)
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(r.w, "skipped %d files:\n", len(skipped))
		for _, s := range skipped {
			fmt.Fprintf(r.w, "  %s: %s\n", s.Path, s.Reason)
		}
	}
}
