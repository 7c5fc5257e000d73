package telemetrytest

import (
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"lifeline/telemetry"
)

// CPUTime returns the CPU time, user and system, the process has used so far; the
// difference over a run is what the run cost, whatever goroutines did the work.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Latency measures how long data takes from a simulator's end of a link to the
// driver's (or the bus's) end. Both ends count units per channel — wave blocks, or
// frames where each carries one sample — and the n-th unit received is paired with the
// n-th sent. It is safe for concurrent use.
type Latency struct {
	mu     sync.Mutex
	sentAt map[telemetry.Code][]time.Time
	recv   map[telemetry.Code]int
	delays []time.Duration
}

// Sent notes that one unit of code left the simulator at at (taken just before the
// bytes are written, so that the receiver cannot have decoded it earlier).
func (l *Latency) Sent(code telemetry.Code, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sentAt == nil {
		l.sentAt = map[telemetry.Code][]time.Time{}
	}
	l.sentAt[code] = append(l.sentAt[code], at)
}

// Received notes that the next n units of code came out at at, and records one delay:
// from when the last of them was sent. Units beyond those sent are counted, not timed.
func (l *Latency) Received(code telemetry.Code, n int, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.recv == nil {
		l.recv = map[telemetry.Code]int{}
	}
	l.recv[code] += n
	if last := l.recv[code] - 1; last >= 0 && last < len(l.sentAt[code]) {
		l.delays = append(l.delays, at.Sub(l.sentAt[code][last]))
	}
}

// CaughtUp reports whether every unit sent so far has been received, so that a
// measurement waits for the tail in flight instead of sleeping.
func (l *Latency) CaughtUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for code, sent := range l.sentAt {
		if l.recv[code] < len(sent) {
			return false
		}
	}
	return true
}

// Delays returns the delays recorded so far, in the order they were measured.
func (l *Latency) Delays() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.delays)
}

// Percentiles summarises a set of delays.
type Percentiles struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarize returns the median, 99th percentile (nearest rank) and maximum of d;
// d is not changed. All are zero for no delays.
func Summarize(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[int(q*float64(len(s)-1))] }
	return Percentiles{N: len(s), P50: at(0.5), P99: at(0.99), Max: s[len(s)-1]}
}

func (p Percentiles) String() string {
	return fmt.Sprintf("p50 %v p99 %v max %v", p.P50, p.P99, p.Max)
}
