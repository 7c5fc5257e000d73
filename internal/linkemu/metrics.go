package linkemu

import "github.com/prometheus/client_golang/prometheus"

// collector reads the link's counters when scraped, so they are kept in one place. Its
// descriptions carry the link's name as a constant label, so that several links with
// different names can share a registry.
type collector struct {
	l                      *Link
	packets, bytes, backlg *prometheus.Desc
}

func newCollector(l *Link) *collector {
	link := prometheus.Labels{"link": l.name}
	return &collector{
		l: l,
		packets: prometheus.NewDesc("lifeline_linkemu_packets_total",
			"Packets the emulated link delivered or dropped, by direction and result.",
			[]string{"direction", "result"}, link),
		bytes: prometheus.NewDesc("lifeline_linkemu_delivered_bytes_total",
			"Bytes of IP packets the emulated link delivered, by direction.",
			[]string{"direction"}, link),
		backlg: prometheus.NewDesc("lifeline_linkemu_backlog_bytes",
			"Bytes waiting in the emulated modem buffer, by direction.",
			[]string{"direction"}, link),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.bytes
	ch <- c.backlg
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Stats()
	for _, d := range []struct {
		dir string
		s   DirStats
	}{{Uplink.String(), st.Up}, {Downlink.String(), st.Down}} {
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
			ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(r.n), d.dir, r.result)
		}
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(d.s.Bytes), d.dir)
		ch <- prometheus.MustNewConstMetric(c.backlg, prometheus.GaugeValue, float64(d.s.Backlog), d.dir)
	}
}
