package dimse

import (
	"errors"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/dicom"
)

// Registerer is where the SCP registers its metrics (prometheus.Registerer).
type Registerer = prometheus.Registerer

type metrics struct {
	associations *prometheus.CounterVec
	active       prometheus.Gauge
	instances    prometheus.Counter
	bytes        prometheus.Counter
	failures     *prometheus.CounterVec
}

func newMetrics(reg Registerer) (*metrics, error) {
	m := &metrics{
		associations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_dicom_associations_total",
			Help: "DICOM associations by outcome (accepted, rejected, released, aborted)."}, []string{"result"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lifeline_dicom_associations_active",
			Help: "DICOM associations open now."}),
		instances: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_dicom_instances_received_total",
			Help: "DICOM instances received and durably stored."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_dicom_received_bytes_total",
			Help: "Data set bytes of the DICOM instances stored."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_dicom_failures_total",
			Help: "DICOM receive failures by reason."}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.associations, m.active, m.instances, m.bytes, m.failures} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

// stats mirrors the counters for Status, which must not depend on a registry.
type stats struct {
	instances atomic.Uint64
	bytes     atomic.Uint64
	mu        sync.Mutex
	failures  map[string]uint64
}

func (s *stats) fail(reason string) {
	s.mu.Lock()
	if s.failures == nil {
		s.failures = map[string]uint64{}
	}
	s.failures[reason]++
	s.mu.Unlock()
}

// SCPStatus is the receiver's part of the box's /api/v1/status.
type SCPStatus struct {
	Listen             string               `json:"listen"`
	AETitle            string               `json:"ae_title"`
	TLS                bool                 `json:"tls"`
	ActiveAssociations int64                `json:"active_associations"`
	TotalAssociations  uint64               `json:"total_associations"`
	Instances          uint64               `json:"instances"`
	Bytes              uint64               `json:"bytes"`
	Failures           map[string]uint64    `json:"failures"`
	RecentStudies      []dicom.StudySummary `json:"recent_studies,omitempty"`
}

// recentStudies is implemented by a sink (the spool) that can list what it received.
type recentStudies interface {
	RecentStudies(n int) []dicom.StudySummary
}

// Status returns a snapshot for the status API, with the last 10 studies when the
// sink can list them.
func (s *SCP) Status() SCPStatus {
	st := SCPStatus{Listen: s.addr.Load().(string), AETitle: s.cfg.AETitle, TLS: s.cfg.TLS != nil,
		ActiveAssociations: s.active.Load(), TotalAssociations: s.total.Load(),
		Instances: s.stats.instances.Load(), Bytes: s.stats.bytes.Load()}
	s.stats.mu.Lock()
	st.Failures = maps.Clone(s.stats.failures)
	s.stats.mu.Unlock()
	if st.Failures == nil {
		st.Failures = map[string]uint64{}
	}
	if r, ok := s.sink.(recentStudies); ok {
		st.RecentStudies = r.RecentStudies(10)
	}
	return st
}
