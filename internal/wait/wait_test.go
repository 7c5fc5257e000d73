package wait

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure instead of ending the test, so that
// For's failure path can be inspected.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestForSeesConditionThatComesTrue(t *testing.T) {
	var calls atomic.Int32
	r := &recorder{TB: t}
	For(r, 10*time.Second, "the fifth look", func() bool { return calls.Add(1) >= 5 })
	if r.failed != "" {
		t.Fatalf("For failed: %s", r.failed)
	}
	if n := calls.Load(); n != 5 {
		t.Fatalf("condition checked %d times, want exactly 5 (stop once it holds)", n)
	}
}

func TestForTimeoutNamesWhatItWaitedFor(t *testing.T) {
	r := &recorder{TB: t}
	start := time.Now()
	For(r, 50*time.Millisecond, "the kettle to boil", func() bool { return false })
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Fatalf("gave up after %s, before the 50ms timeout", took)
	}
	if !strings.Contains(r.failed, "the kettle to boil") || !strings.Contains(r.failed, "50ms") {
		t.Fatalf("failure %q does not name the condition and the timeout", r.failed)
	}
}

func TestUntilReportsTimeout(t *testing.T) {
	if err := Until(20*time.Millisecond, func() bool { return false }); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Until = %v, want ErrTimeout", err)
	}
	if err := Until(0, func() bool { return true }); err != nil {
		t.Fatalf("Until with a condition that already holds = %v, want nil", err)
	}
}

// TestUntilBacksOff proves that a long wait checks its condition a few times a second,
// not two hundred: a 400 ms wait at a fixed 5 ms poll would check it about 80 times.
func TestUntilBacksOff(t *testing.T) {
	var calls atomic.Int32
	start := time.Now()
	if err := Until(10*time.Second, func() bool {
		calls.Add(1)
		return time.Since(start) >= 400*time.Millisecond
	}); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n > 20 {
		t.Fatalf("condition checked %d times in 400ms, want the poll to back off", n)
	}
	for p, steps := firstPoll, 0; p < maxPoll; p, steps = next(p), steps+1 {
		if next(p) <= p || next(p) > maxPoll || steps > 20 {
			t.Fatalf("poll after %s is %s: want it growing up to %s", p, next(p), maxPoll)
		}
	}
	if next(maxPoll) != maxPoll {
		t.Fatalf("poll after the longest is %s, want it to stay at %s", next(maxPoll), maxPoll)
	}
}
