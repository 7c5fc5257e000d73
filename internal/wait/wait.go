// Package wait lets tests wait for a condition with a deadline instead of sleeping a
// fixed time, so that a test is as fast as the machine allows and still passes on a
// loaded one.
package wait

import (
	"testing"
	"time"
)

// poll is how often a condition is checked: short enough that a test ends soon after
// its condition holds, long enough not to busy-wait a shared machine.
const poll = 5 * time.Millisecond

// For waits until cond holds, checking it every few milliseconds, and fails the test
// naming what it waited for when timeout passes first.
func For(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if err := Until(timeout, cond); err != nil {
		tb.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Until waits until cond holds and returns nil, or returns ErrTimeout when timeout
// passes first. It is for code that reports the failure itself (a benchmark, a
// goroutine that may not call Fatal).
func Until(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return ErrTimeout
		}
		time.Sleep(poll)
	}
	return nil
}

// ErrTimeout is returned by Until when the condition did not hold in time.
var ErrTimeout = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string { return "wait: condition did not hold in time" }
