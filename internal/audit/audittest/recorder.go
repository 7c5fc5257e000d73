// Package audittest records audit events in memory so that tests can assert what a
// component audited, without a file.
package audittest

import "sync"

// Recorder is an auditor that keeps every event. It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []Event
	fail   error
}

// Event is one recorded audit event.
type Event struct {
	Name   string
	Fields map[string]any
}

// Audit records the event, as audit.Log.Audit does; while failing, it drops it.
func (r *Recorder) Audit(event string, fields map[string]any) { _ = r.Record(event, fields) }

// Record records the event, as audit.Log.Record does, or returns the error set with
// FailWith and records nothing, as a full disk would.
func (r *Recorder) Record(event string, fields map[string]any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.events = append(r.events, Event{Name: event, Fields: fields})
	return nil
}

// FailWith makes every later event fail with err (nil: succeed again), so that a
// test can check that a security action is refused when it cannot be audited.
func (r *Recorder) FailWith(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// Last returns the fields of the latest event named event, or nil.
func (r *Recorder) Last(event string) map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Name == event {
			return r.events[i].Fields
		}
	}
	return nil
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
