// Package service is how every long-lived part of the box and the hub starts, reports
// its health and stops: a Service runs under a Supervisor, which restarts it with
// capped back-off when it fails. Libraries (monitor readers, the live stream, dispatch)
// report their own health through Health, so the appliance never polls them.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// State is a service's health as operators see it.
type State string

// Service states.
const (
	Starting State = "starting" // started, not yet serving
	Ready    State = "ready"    // doing its job
	Degraded State = "degraded" // serving, but something it needs is missing (e.g. not enrolled)
	Failed   State = "failed"   // stopped with an error; a restart is scheduled
	Stopped  State = "stopped"  // ended on shutdown
)

var allStates = []State{Starting, Ready, Degraded, Failed, Stopped}

// Service is one capability of a process: the DICOM receiver, the forwarder, a
// monitor reader. Run does the work until ctx ends, reporting its health through h.
// Returning an error (or panicking) before ctx ends is a failure: the supervisor
// restarts the service after a back-off. Returning nil before ctx ends means the
// service has nothing more to do.
type Service struct {
	Name string
	Run  func(ctx context.Context, h *Health) error
	// Status, if set, adds the service's own details to /api/v1/status.
	Status func() any
}

// Health is how a running service reports its state.
type Health struct {
	mu        sync.Mutex
	name      string
	state     State
	detail    string
	lastError string
	errorAt   time.Time
	since     time.Time
	restarts  int
	onChange  func(name string, from, to State)
}

// Ready marks the service as doing its job; detail says what, for operators.
func (h *Health) Ready(detail string) { h.set(Ready, detail, nil) }

// Degraded marks the service as running without something it needs.
func (h *Health) Degraded(detail string, err error) { h.set(Degraded, detail, err) }

func (h *Health) set(s State, detail string, err error) {
	h.mu.Lock()
	from := h.state
	if from != s {
		h.since = time.Now()
	}
	h.state, h.detail = s, detail
	if err != nil {
		h.lastError, h.errorAt = err.Error(), time.Now()
	}
	cb := h.onChange
	h.mu.Unlock()
	if cb != nil && from != s {
		cb(h.name, from, s)
	}
}

// Status is a service's entry in /api/v1/status.
type Status struct {
	Name        string    `json:"name"`
	State       State     `json:"state"`
	Detail      string    `json:"detail,omitempty"`
	Since       time.Time `json:"since"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Restarts    int       `json:"restarts"`
	Details     any       `json:"details,omitempty"`
}

// Backoff bounds the supervisor's restart delays.
type Backoff struct {
	Initial time.Duration // first delay
	Max     time.Duration // cap
	// Reset: a service that ran this long before failing starts again from Initial.
	Reset time.Duration
}

// DefaultBackoff starts at 1 s and doubles up to one minute.
var DefaultBackoff = Backoff{Initial: time.Second, Max: time.Minute, Reset: 2 * time.Minute}

// Supervisor runs services, each in its own goroutine, restarting a failed one with
// capped exponential back-off without touching the others.
type Supervisor struct {
	log      *slog.Logger
	backoff  Backoff
	mu       sync.Mutex
	services []*supervised
	state    *prometheus.GaugeVec
	restarts *prometheus.CounterVec
}

type supervised struct {
	svc    Service
	health *Health
}

// NewSupervisor returns a supervisor that logs to log and exports service states and
// restarts on reg.
func NewSupervisor(log *slog.Logger, reg prometheus.Registerer, backoff Backoff) *Supervisor {
	s := &Supervisor{
		log:     log,
		backoff: backoff,
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lifeline_service_state", Help: "1 for the state each service is in, 0 for the others.",
		}, []string{"service", "state"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lifeline_service_restarts_total", Help: "Restarts of each service after a failure.",
		}, []string{"service"}),
	}
	reg.MustRegister(s.state, s.restarts)
	return s
}

// Add registers a service; call before Run.
func (s *Supervisor) Add(svc Service) {
	h := &Health{name: svc.Name, state: Starting, since: time.Now(), onChange: s.stateChanged}
	s.mu.Lock()
	s.services = append(s.services, &supervised{svc: svc, health: h})
	s.mu.Unlock()
	s.setGauge(svc.Name, Starting)
}

func (s *Supervisor) stateChanged(name string, from, to State) {
	s.setGauge(name, to)
	level := slog.LevelInfo
	if to == Failed || to == Degraded {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "service state changed", "service", name, "from", string(from), "to", string(to))
}

func (s *Supervisor) setGauge(name string, st State) {
	for _, x := range allStates {
		v := 0.0
		if x == st {
			v = 1
		}
		s.state.WithLabelValues(name, string(x)).Set(v)
	}
}

// Run starts every service and blocks until ctx ends and every service has returned,
// or until grace has passed after ctx ended, whichever is first. It reports the
// services that did not stop in time.
func (s *Supervisor) Run(ctx context.Context, grace time.Duration) error {
	var wg sync.WaitGroup
	s.mu.Lock()
	for _, sv := range s.services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.supervise(ctx, sv)
		}()
	}
	s.mu.Unlock()
	<-ctx.Done()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		var stuck []string
		for _, st := range s.Status() {
			if st.State != Stopped {
				stuck = append(stuck, st.Name)
			}
		}
		return fmt.Errorf("services did not stop within %s: %v", grace, stuck)
	}
}

func (s *Supervisor) supervise(ctx context.Context, sv *supervised) {
	delay := s.backoff.Initial
	for {
		started := time.Now()
		err := s.runOnce(ctx, sv)
		if ctx.Err() != nil {
			sv.health.set(Stopped, "shut down", nil)
			return
		}
		if err == nil {
			sv.health.set(Stopped, "finished", nil)
			return
		}
		if time.Since(started) >= s.backoff.Reset {
			delay = s.backoff.Initial
		}
		sv.health.mu.Lock()
		sv.health.restarts++
		sv.health.mu.Unlock()
		sv.health.set(Failed, fmt.Sprintf("restarting in %s", delay), err)
		s.restarts.WithLabelValues(sv.svc.Name).Inc()
		s.log.Error("service failed; restarting", "service", sv.svc.Name, "err", err, "retry_in", delay.String())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			sv.health.set(Stopped, "shut down", nil)
			return
		case <-t.C:
		}
		delay = min(delay*2, s.backoff.Max)
		sv.health.set(Starting, "restarting", nil)
	}
}

// runOnce runs the service once, turning a panic into an error so that one broken
// capability cannot take the box down.
func (s *Supervisor) runOnce(ctx context.Context, sv *supervised) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
			s.log.Error("service panicked", "service", sv.svc.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	err = sv.svc.Run(ctx, sv.health)
	if err == nil && ctx.Err() == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// Status returns every service's state, sorted by name.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.services))
	for _, sv := range s.services {
		h := sv.health
		h.mu.Lock()
		st := Status{
			Name: sv.svc.Name, State: h.state, Detail: h.detail, Since: h.since,
			LastError: h.lastError, LastErrorAt: h.errorAt, Restarts: h.restarts,
		}
		h.mu.Unlock()
		if sv.svc.Status != nil {
			st.Details = sv.svc.Status()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Overall summarises services for the crew: failed beats degraded beats starting.
func Overall(services []Status) State {
	rank := map[State]int{Ready: 0, Stopped: 0, Starting: 1, Degraded: 2, Failed: 3}
	worst := Ready
	for _, s := range services {
		if rank[s.State] > rank[worst] {
			worst = s.State
		}
	}
	return worst
}

// Sleep waits for d or until ctx ends, and reports whether d passed: a service's loop
// between two rounds of work, which must stop at once when the service is stopped.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
