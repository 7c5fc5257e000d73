package linkemu

import "github.com/prometheus/client_golang/prometheus"

var (
	descPackets = prometheus.NewDesc("lifeline_linkemu_packets_total",
		"Packets the emulated link delivered or dropped, by direction and result.",
		[]string{"link", "direction", "result"}, nil)
	descBytes = prometheus.NewDesc("lifeline_linkemu_delivered_bytes_total",
		"Bytes of IP packets the emulated link delivered, by direction.",
		[]string{"link", "direction"}, nil)
	descBacklog = prometheus.NewDesc("lifeline_linkemu_backlog_bytes",
		"Bytes waiting in the emulated modem buffer, by direction.",
		[]string{"link", "direction"}, nil)
)

// collector reads the link's counters when scraped, so they are kept in one place.
type collector struct{ l *Link }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPackets
	ch <- descBytes
	ch <- descBacklog
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Stats()
	for _, d := range []struct {
		dir string
		s   DirStats
	}{{"uplink", st.Up}, {"downlink", st.Down}} {
		for _, r := range []struct {
			result string
			n      uint64
		}{
			{Delivered.String(), d.s.Packets},
			{DropQueue.String(), d.s.DroppedQueue},
			{DropLoss.String(), d.s.DroppedLoss},
			{DropOutage.String(), d.s.DroppedOutage},
			{DropStale.String(), d.s.DroppedStale},
			{"corrupted", d.s.Corrupted},
			{"write_error", d.s.WriteErrors},
		} {
			ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(r.n), c.l.name, d.dir, r.result)
		}
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(d.s.Bytes), c.l.name, d.dir)
		ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(d.s.Backlog), c.l.name, d.dir)
	}
}
