// Package audittest records audit events in memory so that tests can assert what a
// component audited, without a file.
package audittest

import "sync"

// Recorder is an auditor that keeps every event. It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Event is one recorded audit event.
type Event struct {
	Name   string
	Fields map[string]any
}

// Audit records the event.
func (r *Recorder) Audit(event string, fields map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, Event{Name: event, Fields: fields})
}

// Count returns how many times event was recorded.
func (r *Recorder) Count(event string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Name == event {
			n++
		}
	}
	return n
}

// Events returns the names of all recorded events, in order.
func (r *Recorder) Events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, len(r.events))
	for i, e := range r.events {
		names[i] = e.Name
	}
	return names
}
