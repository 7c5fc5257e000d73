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
	connections  prometheus.Gauge
	refused      *prometheus.CounterVec
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
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lifeline_dicom_connections_open",
			Help: "TCP connections open on the DICOM port, associated or not."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_dicom_refused_total",
			Help: "DICOM connections and associations refused by a limit (address_not_allowed, connection_limit, " +
				"address_limit, association_limit, calling_ae_limit)."}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.associations, m.active, m.instances, m.bytes, m.failures, m.connections, m.refused} {
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
	refused   map[string]uint64
}

func (s *stats) fail(reason string) {
	s.mu.Lock()
	if s.failures == nil {
		s.failures = map[string]uint64{}
	}
	s.failures[reason]++
	s.mu.Unlock()
}

func (s *stats) refuse(reason string) {
	s.mu.Lock()
	if s.refused == nil {
		s.refused = map[string]uint64{}
	}
	s.refused[reason]++
	s.mu.Unlock()
}

// SCPStatus is the receiver's part of the box's /api/v1/status.
type SCPStatus struct {
	Listen             string               `json:"listen"`
	AETitle            string               `json:"ae_title"`
	TLS                bool                 `json:"tls"`
	OpenConnections    int                  `json:"open_connections"`
	ActiveAssociations int64                `json:"active_associations"`
	TotalAssociations  uint64               `json:"total_associations"`
	Instances          uint64               `json:"instances"`
	Bytes              uint64               `json:"bytes"`
	Failures           map[string]uint64    `json:"failures"`
	Refused            map[string]uint64    `json:"refused"` // by limit, see lifeline_dicom_refused_total
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
		OpenConnections: s.gate.open(), ActiveAssociations: s.active.Load(), TotalAssociations: s.total.Load(),
		Instances: s.stats.instances.Load(), Bytes: s.stats.bytes.Load()}
	s.stats.mu.Lock()
	st.Failures = maps.Clone(s.stats.failures)
	st.Refused = maps.Clone(s.stats.refused)
	s.stats.mu.Unlock()
	if st.Refused == nil {
		st.Refused = map[string]uint64{}
	}
	if st.Failures == nil {
		st.Failures = map[string]uint64{}
	}
	if r, ok := s.sink.(recentStudies); ok {
		st.RecentStudies = r.RecentStudies(10)
	}
	return st
}
