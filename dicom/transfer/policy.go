package transfer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"lifeline/dicom/spool"
)

// Priority orders studies in the forwarder's queue: lower goes first.
type Priority int

// Priorities, most urgent first.
const (
	PriorityStat Priority = iota
	PriorityUrgent
	PriorityRoutine
)

func (p Priority) String() string {
	switch p {
	case PriorityStat:
		return "stat"
	case PriorityUrgent:
		return "urgent"
	}
	return "routine"
}

// ParsePriority reads "stat", "urgent" or "routine".
func ParsePriority(s string) (Priority, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "stat":
		return PriorityStat, nil
	case "urgent":
		return PriorityUrgent, nil
	case "routine", "":
		return PriorityRoutine, nil
	}
	return PriorityRoutine, fmt.Errorf("priority %q: want stat, urgent or routine", s)
}

// PriorityRule gives studies from a modality and/or a calling AE title a priority.
// Empty fields match anything; the first matching rule wins.
type PriorityRule struct {
	Modality  string
	CallingAE string
	Priority  Priority
}

// DefaultPriorityRules sends ambulance ECGs first.
var DefaultPriorityRules = []PriorityRule{{Modality: "ECG", Priority: PriorityStat}}

func priorityOf(rules []PriorityRule, st *spool.Study) Priority {
	for _, r := range rules {
		if (r.Modality == "" || strings.EqualFold(r.Modality, st.Modality)) &&
			(r.CallingAE == "" || strings.EqualFold(strings.TrimSpace(r.CallingAE), strings.TrimSpace(st.CallingAE))) {
			return r.Priority
		}
	}
	return PriorityRoutine
}

// limiter is a token bucket over wire bytes shared by every upload, so that a burst
// of forwarding leaves the rest of the uplink (live video) its share. Its rate can
// change at any time; zero means unlimited.
type limiter struct {
	mu     sync.Mutex
	rate   float64 // bytes per second; 0 = unlimited
	tokens float64
	last   time.Time
}

// limitSlice is the most one Read hands out at once, so that a cap change takes
// effect within a fraction of a second even on a slow link.
const limitSlice = 16 << 10

func (l *limiter) setBitsPerSecond(bps int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate = float64(bps) / 8
	l.last = time.Now()
	if l.tokens > l.burst() {
		l.tokens = l.burst()
	}
}

func (l *limiter) bitsPerSecond() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(l.rate * 8)
}

// burst is 50 ms worth of rate, at least one slice.
func (l *limiter) burst() float64 {
	return max(l.rate/20, limitSlice)
}

// take waits until n bytes may go, or ctx ends.
func (l *limiter) take(ctx context.Context, n int) error {
	for {
		l.mu.Lock()
		if l.rate == 0 {
			l.mu.Unlock()
			return nil
		}
		now := time.Now()
		l.tokens = min(l.burst(), l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
		if l.tokens >= float64(n) {
			l.tokens -= float64(n)
			l.mu.Unlock()
			return nil
		}
		wait := time.Duration((float64(n) - l.tokens) / l.rate * float64(time.Second))
		l.mu.Unlock()
		// Re-check at least every 100 ms so a raised cap is used at once.
		t := time.NewTimer(min(wait, 100*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// reader paces body through the limiter.
func (l *limiter) reader(ctx context.Context, body []byte) io.Reader {
	return &pacedReader{ctx: ctx, l: l, r: bytes.NewReader(body)}
}

type pacedReader struct {
	ctx context.Context
	l   *limiter
	r   *bytes.Reader
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.r.Len() == 0 {
		return 0, io.EOF
	}
	n := min(len(b), limitSlice, p.r.Len())
	if err := p.l.take(p.ctx, n); err != nil {
		return 0, err
	}
	return p.r.Read(b[:n])
}
