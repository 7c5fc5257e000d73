// Package telemetrytest has helpers for driver tests and benchmarks: a Sink that records
// everything a driver emits, a socat null-modem Cable (internal/peers) opened at a
// protocol's mode with a simulator and a driver running on its ends, the
// sent-versus-received comparison (and Delivered, the condition to wait for before it),
// a summary of the pty tests' scenario, and latency and CPU measurement.
package telemetrytest

import (
	"maps"
	"sync"

	"lifeline/telemetry"
)

// Sink records events, frames and skipped bytes; safe for concurrent use.
type Sink struct {
	mu      sync.Mutex
	events  []telemetry.Event
	frames  int
	skipped int
	reasons map[string]int
}

// Emit implements telemetry.Sink.
func (s *Sink) Emit(e telemetry.Event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

// Frame implements telemetry.Sink.
func (s *Sink) Frame() {
	s.mu.Lock()
	s.frames++
	s.mu.Unlock()
}

// Skipped implements telemetry.Sink.
func (s *Sink) Skipped(n int, reason string) {
	s.mu.Lock()
	s.skipped += n
	if s.reasons == nil {
		s.reasons = map[string]int{}
	}
	s.reasons[reason] += n
	s.mu.Unlock()
}

// Events returns a copy of the events so far.
func (s *Sink) Events() []telemetry.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]telemetry.Event(nil), s.events...)
}

// Counts returns frames and skipped bytes so far.
func (s *Sink) Counts() (frames, skipped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames, s.skipped
}

// Skips returns a copy of the skipped bytes per reason so far.
func (s *Sink) Skips() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.reasons)
}

// Samples returns the concatenated samples of every wave block of code.
func (s *Sink) Samples(code telemetry.Code) []float32 {
	var out []float32
	for _, e := range s.Events() {
		if w, ok := e.(*telemetry.Wave); ok && w.Code == code {
			out = append(out, w.Samples...)
		}
	}
	return out
}

// Waves returns the wave blocks of code.
func (s *Sink) Waves(code telemetry.Code) []*telemetry.Wave {
	var out []*telemetry.Wave
	for _, e := range s.Events() {
		if w, ok := e.(*telemetry.Wave); ok && w.Code == code {
			out = append(out, w)
		}
	}
	return out
}

// Numerics returns the numerics of code.
func (s *Sink) Numerics(code telemetry.Code) []*telemetry.Numeric {
	var out []*telemetry.Numeric
	for _, e := range s.Events() {
		if n, ok := e.(*telemetry.Numeric); ok && n.Code == code {
			out = append(out, n)
		}
	}
	return out
}

// Devices returns the device events.
func (s *Sink) Devices() []*telemetry.DeviceEvent {
	var out []*telemetry.DeviceEvent
	for _, e := range s.Events() {
		if d, ok := e.(*telemetry.DeviceEvent); ok {
			out = append(out, d)
		}
	}
	return out
}
