package transfer

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/dicom/spool"
	"lifeline/internal/wait"
)

// TestBandwidthCapHoldsAndChangesAtRunTime paces 256 KiB at 2 Mbit/s, then lifts the
// cap mid-way as the streamer would when it no longer needs the uplink.
func TestBandwidthCapHoldsAndChangesAtRunTime(t *testing.T) {
	l := &limiter{}
	l.setBitsPerSecond(2_000_000)
	body := make([]byte, 256<<10)
	start := time.Now()
	if _, err := io.Copy(io.Discard, l.reader(context.Background(), body)); err != nil {
		t.Fatal(err)
	}
	// 256 KiB at 250 kB/s is 1.05 s, less the 50 ms burst.
	if el := time.Since(start); el < 900*time.Millisecond || el > 2*time.Second {
		t.Fatalf("256 KiB at 2 Mbit/s took %v", el)
	}

	l.setBitsPerSecond(800_000) // 100 kB/s: 2.6 s for the body unless lifted
	start = time.Now()
	var read countingWriter
	lifted := make(chan error, 1)
	go func() {
		// Lift the cap once the paced copy is under way at 100 kB/s (about 0.3 s in).
		err := wait.Until(10*time.Second, func() bool { return read.n.Load() >= 32<<10 })
		l.setBitsPerSecond(0)
		lifted <- err
	}()
	if _, err := io.Copy(&read, l.reader(context.Background(), body)); err != nil {
		t.Fatal(err)
	}
	if err := <-lifted; err != nil {
		t.Fatalf("the paced copy never got under way: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("lifting the cap did not take effect: %v", el)
	}

	// A cancelled transfer stops waiting for tokens.
	l.setBitsPerSecond(8_000)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := io.Copy(io.Discard, l.reader(ctx, body)); err == nil {
		t.Fatal("paced read ignored its context")
	}
}

func TestPriorityRules(t *testing.T) {
	rules := []PriorityRule{{Modality: "ECG", Priority: PriorityStat}, {CallingAE: "ER_CT", Priority: PriorityUrgent}, {Modality: "CT", CallingAE: "AMB1", Priority: PriorityStat}}
	for _, c := range []struct {
		mod, ae string
		want    Priority
	}{{"ECG", "X", PriorityStat}, {"ecg", "", PriorityStat}, {"CT", "ER_CT ", PriorityUrgent}, {"CT", "AMB1", PriorityStat}, {"MR", "AMB1", PriorityRoutine}} {
		if got := priorityOf(rules, &spool.Study{Modality: c.mod, CallingAE: c.ae}); got != c.want {
			t.Errorf("%s from %q: %v, want %v", c.mod, c.ae, got, c.want)
		}
	}
	for s, want := range map[string]Priority{"STAT": PriorityStat, "urgent": PriorityUrgent, "": PriorityRoutine} {
		if p, err := ParsePriority(s); err != nil || p != want {
			t.Errorf("ParsePriority(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParsePriority("asap"); err == nil {
		t.Error("ParsePriority accepted asap")
	}
}

func TestBackoffIsCapped(t *testing.T) {
	if d := backoff(time.Second, 30*time.Second, 1); d != time.Second {
		t.Fatal(d)
	}
	if d := backoff(time.Second, 30*time.Second, 3); d != 4*time.Second {
		t.Fatal(d)
	}
	if d := backoff(time.Second, 30*time.Second, 1000); d != 30*time.Second {
		t.Fatal(d)
	}
}

// countingWriter discards what it is given and counts it.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}
