package appliance

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"lifeline/internal/audit"
	"lifeline/internal/service"
	"lifeline/internal/throttle"
	"lifeline/internal/trust"
)

// refusalSummaryEvery is how often a flood of refusals from one address is written
// to the audit log as one line with its count.
const refusalSummaryEvery = time.Minute

// refusalAudit audits what strangers can repeat at will on the hub's port for boxes
// (a wrong enrolment code, a request without a valid box certificate) through
// audit.Repeats, keyed by client address, so that a flood costs one line a minute.
// Security actions pass straight to the log through Record, one line each and
// fail-closed. It implements trust.Auditor.
type refusalAudit struct {
	log     *audit.Log
	repeats *audit.Repeats
}

// newRefusalAudit makes the hub's refusal auditor, and adds the service that writes
// its summaries to the supervisor, which stops it before the audit log closes.
func (h *Hub) newRefusalAudit() *refusalAudit {
	ra := &refusalAudit{log: h.audit, repeats: audit.NewRepeats(h.audit, audit.RepeatsConfig{Every: refusalSummaryEvery})}
	h.sup.Add(service.Service{Name: "audit-repeats", Run: func(ctx context.Context, health *service.Health) error {
		health.Ready("repeated refusals from one address are audited as one line a minute")
		return ra.repeats.Run(ctx)
	}})
	return ra
}

// Record implements trust.Auditor: security actions, one line each.
func (ra *refusalAudit) Record(event string, fields map[string]any) error {
	return ra.log.Record(event, fields)
}

// Audit implements trust.Auditor: the first of a kind from an address at once, the
// rest in its summary line. A refused box is a source of its own beside the strangers
// at its address (behind the same NAT), so that its refusal is never folded into
// theirs; its name comes from a certificate the hub issued, which no stranger can
// vary.
func (ra *refusalAudit) Audit(event string, fields map[string]any) {
	remote, _ := fields["remote"].(string)
	source := throttle.AddressKey(remote)
	if device, _ := fields["device"].(string); device != "" {
		source += " device " + device
	}
	ra.repeats.Audit(event, source, fields)
}

// enrolEndpoint is the hub's enrolment endpoint behind its limits: an address whose
// codes keep being refused waits longer after each (trust.EnrollLimits), and its
// refusals are audited as one line a minute. lifeline_hub_enrol_requests_total counts
// the answers, so a flood shows in /metrics as well.
func (h *Hub) enrolEndpoint() http.Handler {
	answers := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lifeline_hub_enrol_requests_total",
		Help: "Enrolment requests by answer: 200 enrolled, 400 malformed, 403 code refused, 429 address throttled.",
	}, []string{"code"})
	if err := h.reg.Register(answers); err != nil {
		h.log.Warn("enrolment requests are not counted in /metrics", "err", err)
	}
	return promhttp.InstrumentHandlerCounter(answers, trust.LimitedEnrollHandler(h.auth, h.devices, h.audit, trust.EnrollLimits{Repeats: h.refusals.repeats}))
}
