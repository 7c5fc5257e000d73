package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lifeline/internal/audit/audittest"
)

// clock is a settable time for Repeats.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestRepeatsFirstAtOnceThenOneSummaryPerInterval: the first refusal from an address
// is audited at once; the rest of its interval become one line with their count and
// the latest fields; another address is audited at once on its own; a source quiet
// for an interval is forgotten, so its next refusal is audited at once again.
func TestRepeatsFirstAtOnceThenOneSummaryPerInterval(t *testing.T) {
	rec := &audittest.Recorder{}
	clk := &clock{t: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
	r := NewRepeats(rec, RepeatsConfig{Every: time.Minute, Now: clk.now})

	for i := range 500 {
		r.Audit("enrol.refused", "192.0.2.7", map[string]any{"remote": "192.0.2.7:4000", "n": i})
	}
	r.Audit("enrol.refused", "198.51.100.1", map[string]any{"remote": "198.51.100.1:5000"})
	if n := rec.Count("enrol.refused"); n != 2 {
		t.Fatalf("%d lines at once; want the first from each address", n)
	}
	r.Flush(false)
	if n := rec.Count("enrol.refused"); n != 2 {
		t.Fatalf("%d lines before the interval ended", n)
	}
	clk.add(time.Minute)
	r.Flush(false)
	last := rec.Last("enrol.refused")
	if n := rec.Count("enrol.refused"); n != 3 || last["repeated"] != 499 || last["n"] != 499 || last["since"] != "2026-12-02T08:00:00Z" {
		t.Fatalf("%d lines, last %v; want one summary of 499 with the latest fields", n, last)
	}
	// The flood goes on: one more summary per interval.
	r.Audit("enrol.refused", "192.0.2.7", map[string]any{"n": 500})
	clk.add(time.Minute)
	r.Flush(false)
	if n := rec.Count("enrol.refused"); n != 4 || rec.Last("enrol.refused")["repeated"] != 1 {
		t.Fatalf("%d lines, last %v", n, rec.Last("enrol.refused"))
	}
	// Quiet for an interval: forgotten; the next is audited at once.
	clk.add(time.Minute)
	r.Flush(false)
	r.Audit("enrol.refused", "192.0.2.7", map[string]any{"n": 501})
	if n := rec.Count("enrol.refused"); n != 5 || rec.Last("enrol.refused")["repeated"] != nil {
		t.Fatalf("%d lines, last %v; want the refusal after a quiet interval audited at once", n, rec.Last("enrol.refused"))
	}
}

// TestRepeatsBoundTheSources: beyond Sources addresses, new ones are counted together,
// so many addresses grow neither the table nor the log; Run writes what is left when
// it stops.
func TestRepeatsBoundTheSources(t *testing.T) {
	rec := &audittest.Recorder{}
	r := NewRepeats(rec, RepeatsConfig{Every: time.Hour, Sources: 10})
	for i := range 1000 {
		r.Audit("enrol.refused", fmt.Sprintf("10.0.%d.%d", i/256, i%256), map[string]any{"n": i})
	}
	if n := rec.Count("enrol.refused"); n != 11 {
		t.Fatalf("%d lines at once; want 10 sources and one for the others", n)
	}
	if len(r.open) > 11 {
		t.Fatalf("%d sources held", len(r.open))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	cancel()
	<-done
	last := rec.Last("enrol.refused")
	if last["source"] != OtherSources || last["repeated"] != 989 {
		t.Fatalf("summary on stop %v; want the 989 from other sources", last)
	}
}

// TestRepeatsAuditBytesPerThousandRefusals measures the audit file's growth for 1000
// refused enrolment codes from one address within a minute: one fsynced line each
// before, the first line and one summary now.
func TestRepeatsAuditBytesPerThousandRefusals(t *testing.T) {
	dir := t.TempDir()
	fields := func(i int) map[string]any {
		return map[string]any{"device": "", "remote": fmt.Sprintf("192.0.2.7:%d", 40000+i), "reason": "trust: enrolment code is not valid"}
	}
	size := func(name string, write func(l *Log)) int64 {
		path := filepath.Join(dir, name)
		l, err := Open(path, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		write(l)
		l.Close()
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return info.Size()
	}
	each := size("each.log", func(l *Log) {
		for i := range 1000 {
			l.Audit("enrol.refused", fields(i))
		}
	})
	summed := size("summed.log", func(l *Log) {
		r := NewRepeats(l, RepeatsConfig{})
		for i := range 1000 {
			r.Audit("enrol.refused", "192.0.2.7", fields(i))
		}
		r.Flush(true)
	})
	t.Logf("audit bytes for 1000 refused codes from one address: %d one by one, %d with Repeats", each, summed)
	if summed > 1024 {
		t.Errorf("%d bytes for 1000 refusals; want two lines", summed)
	}
}
