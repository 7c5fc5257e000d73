package trust

import (
	"fmt"
	"net/http"
	"time"

	"lifeline/internal/throttle"
)

// EnrollLimits bound what a client without a valid code can make the hub do at
// EnrollPath, the one endpoint anyone who reaches the hub may call. Zero values mean
// the defaults.
type EnrollLimits struct {
	// Refusals throttles an address whose requests were refused (a wrong, used or
	// expired code, a malformed request): default 10 free, then a wait of 1 s
	// doubling with each further refusal up to 15 min, forgotten after an hour
	// without one. A crew that mistypes a code a few times never waits; a guesser
	// gets about a hundred tries a day (each against an 80-bit secret). A refused
	// request from a blocked address is answered 429 before its body is read.
	Refusals *throttle.Table
	// Repeats aggregates the endpoint's observations per address, so that a flood
	// costs one audit line a minute rather than one per request. Nil: each is
	// audited as it happens.
	Repeats RepeatAuditor
	// ReadTimeout bounds reading one enrolment request, body included (default
	// 10 s): it is a few kilobytes, and a body trickled slower is cut.
	ReadTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// RepeatAuditor aggregates repeated observations from one source; the hub's
// audit.Repeats implements it.
type RepeatAuditor interface {
	Audit(event, source string, fields map[string]any)
}

func (l *EnrollLimits) populate() {
	if l.Refusals == nil {
		l.Refusals = throttle.New(throttle.Policy{})
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = 10 * time.Second
	}
	if l.Now == nil {
		l.Now = time.Now
	}
}

// LimitedEnrollHandler serves EnrollPath as EnrollHandler does, behind lim. Security
// actions (an accepted enrolment) are still recorded one by one through audit,
// fail-closed; only observations (refusals) go through lim.Repeats.
func LimitedEnrollHandler(auth *Authority, reg *Registry, audit Auditor, lim EnrollLimits) http.Handler {
	lim.populate()
	observe := audit
	if lim.Repeats != nil {
		observe = repeatedObservations{Auditor: audit, repeats: lim.Repeats}
	}
	inner := EnrollHandler(auth, reg, observe)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Errors mean the transport cannot set a deadline; the server's own
		// read timeout bounds the request then.
		_ = http.NewResponseController(w).SetReadDeadline(lim.Now().Add(lim.ReadTimeout))
		key := throttle.AddressKey(r.RemoteAddr)
		if wait := lim.Refusals.Blocked(key, lim.Now()); wait > 0 {
			secs := max(int(wait.Round(time.Second)/time.Second), 1)
			observe.Audit("enrol.throttled", map[string]any{"remote": r.RemoteAddr, "retry_after_s": secs})
			w.Header().Set("Retry-After", fmt.Sprint(secs))
			writeEnrollError(w, http.StatusTooManyRequests, fmt.Sprintf("too many refused enrolments from this address; try again in %d s", secs))
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		inner.ServeHTTP(sw, r)
		switch {
		case sw.status == http.StatusOK:
			lim.Refusals.Succeed(key)
		case sw.status >= 400 && sw.status < 500:
			lim.Refusals.Fail(key, lim.Now())
		}
	})
}

// repeatedObservations passes security actions (Record) through to the audit log
// and aggregates the endpoint's observations per client address.
type repeatedObservations struct {
	Auditor
	repeats RepeatAuditor
}

func (o repeatedObservations) Audit(event string, fields map[string]any) {
	remote, _ := fields["remote"].(string)
	o.repeats.Audit(event, throttle.AddressKey(remote), fields)
}

// statusWriter notes the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
