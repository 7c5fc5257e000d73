// Package wait lets tests wait for a condition with a deadline instead of sleeping a
// fixed time, so that a test is as fast as the machine allows and still passes on a
// loaded one.
package wait

import (
	"testing"
	"time"
)

// The condition is checked first after firstPoll, then at intervals growing by half each
// time up to maxPoll: a condition that holds soon is noticed within milliseconds, and a
// long wait (a condition that asks a server over HTTP, say) does not busy a shared machine.
const (
	firstPoll = 2 * time.Millisecond
	maxPoll   = 80 * time.Millisecond
)

// For waits until cond holds, checking it at first every few milliseconds and then less
// often, and fails the test naming what it waited for when timeout passes first.
func For(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if err := Until(timeout, cond); err != nil {
		tb.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Until waits until cond holds and returns nil, or returns ErrTimeout when timeout
// passes first. It is for code that reports the failure itself (a benchmark, a
// goroutine that may not call Fatal). cond is checked once more at the deadline, so a
// condition that holds by then is never reported as a timeout.
func Until(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for poll := firstPoll; ; poll = next(poll) {
		if cond() {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ErrTimeout
		}
		time.Sleep(min(poll, left))
	}
}

// next is the interval after poll.
func next(poll time.Duration) time.Duration {
	return min(poll*3/2, maxPoll)
}

// ErrTimeout is returned by Until when the condition did not hold in time.
var ErrTimeout = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string { return "wait: condition did not hold in time" }
