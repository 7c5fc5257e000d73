package sfu

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/internal/service"
)

// Status is the SFU's entry in the hub's /api/v1/status.
type Status struct {
	UDP           string          `json:"udp,omitempty"` // where media is served; empty when not running
	TCP           string          `json:"tcp,omitempty"`
	Sessions      []SessionStatus `json:"sessions"`
	BitrateIn     float64         `json:"bitrate_in_bps"`
	BitrateOut    float64         `json:"bitrate_out_bps"`
	PacketsLost   uint64          `json:"packets_lost"`   // box → hub, before retransmission
	NACKsServed   uint64          `json:"nacks_served"`   // retransmissions to viewers from the cache
	PLIsForwarded uint64          `json:"plis_forwarded"` // keyframe requests sent to boxes
}

// SessionStatus is one box's live session.
type SessionStatus struct {
	Device    string         `json:"device"`
	Session   string         `json:"session"`
	Remote    string         `json:"remote"`
	Started   time.Time      `json:"started"`
	State     string         `json:"state"`
	Tracks    []TrackStatus  `json:"tracks"`
	Viewers   []ViewerStatus `json:"viewers"`
	BitrateIn float64        `json:"bitrate_in_bps"`
	// Talkback is the viewer session whose microphone the crew hears, if any;
	// TalkbackOffered whether the box offered to receive audio at all.
	Talkback        string `json:"talkback,omitempty"`
	TalkbackOffered bool   `json:"talkback_offered"`
}

// TrackStatus is one track of a box.
type TrackStatus struct {
	Kind        string  `json:"kind"`
	Codec       string  `json:"codec"`
	Fmtp        string  `json:"fmtp,omitempty"`
	SSRC        uint32  `json:"ssrc"`
	Packets     uint64  `json:"packets"`
	Bytes       uint64  `json:"bytes"`
	PacketsLost uint64  `json:"packets_lost"`
	PacketsLate uint64  `json:"packets_late"` // retransmitted or reordered arrivals
	BitrateIn   float64 `json:"bitrate_in_bps"`
}

// ViewerStatus is one viewer of a box.
type ViewerStatus struct {
	Session     string    `json:"session"`
	Viewer      string    `json:"viewer"`
	Remote      string    `json:"remote"`
	Joined      time.Time `json:"joined"`
	State       string    `json:"state"`
	PacketsOut  uint64    `json:"packets_out"`
	BytesOut    uint64    `json:"bytes_out"`
	Dropped     uint64    `json:"dropped"`      // RTP packets the viewer's queue had no room for
	DataDropped uint64    `json:"data_dropped"` // data channel messages not sent to it
	NACKsServed uint64    `json:"nacks_served"`
	BitrateOut  float64   `json:"bitrate_out_bps"`
}

// Status reports every session and viewer.
func (s *SFU) Status() Status {
	now := time.Now()
	s.mu.Lock()
	st := Status{NACKsServed: s.nacksServed.Load(), PLIsForwarded: s.plisForwarded.Load(), Sessions: []SessionStatus{}}
	if s.t != nil {
		st.UDP, st.TCP = s.t.udpAddr(), s.t.tcpAddr()
	}
	pubs := make([]*publication, 0, len(s.pubs))
	for _, p := range s.pubs {
		pubs = append(pubs, p)
	}
	s.mu.Unlock()
	for _, p := range pubs {
		ss := SessionStatus{Device: p.device, Session: p.id, Remote: p.remote, Started: p.started, State: p.pc.ConnectionState().String(), Viewers: []ViewerStatus{}}
		if p.talkback != nil {
			ss.TalkbackOffered = true
			p.talkback.mu.Lock()
			if p.talkback.speaker != nil {
				ss.Talkback = p.talkback.speaker.id
			}
			p.talkback.mu.Unlock()
		}
		for _, src := range p.sources {
			ts := TrackStatus{
				Kind: src.kind.String(), Codec: src.codec.MimeType, Fmtp: src.codec.SDPFmtpLine, SSRC: src.ssrc.Load(),
				Packets: src.packets.Load(), Bytes: src.bytes.Load(), PacketsLost: src.lost.Load(), PacketsLate: src.late.Load(),
				BitrateIn: src.rate.bitsPerSecond(now),
			}
			ss.Tracks = append(ss.Tracks, ts)
			ss.BitrateIn += ts.BitrateIn
			st.PacketsLost += ts.PacketsLost
		}
		sort.Slice(ss.Tracks, func(i, j int) bool { return ss.Tracks[i].Kind > ss.Tracks[j].Kind })
		for _, v := range p.feed.viewerList() {
			vs := v.status(now)
			ss.Viewers = append(ss.Viewers, vs)
			st.BitrateOut += vs.BitrateOut
		}
		st.BitrateIn += ss.BitrateIn
		st.Sessions = append(st.Sessions, ss)
	}
	sort.Slice(st.Sessions, func(i, j int) bool { return st.Sessions[i].Device < st.Sessions[j].Device })
	return st
}

func (v *viewer) status(now time.Time) ViewerStatus {
	vs := ViewerStatus{
		Session: v.id, Viewer: v.who, Remote: v.remote, Joined: v.joined, State: v.pc.ConnectionState().String(),
		PacketsOut: v.packetsOut.Load(), BytesOut: v.bytesOut.Load(), Dropped: v.dropped.Load(),
		DataDropped: v.dataDropped.Load(), BitrateOut: v.rate.bitsPerSecond(now),
	}
	for _, vt := range v.tracks {
		vs.NACKsServed += vt.nacksServed.Load()
	}
	return vs
}

// Service runs the SFU's media transport under the hub's supervisor: it binds the
// UDP port and the ICE-TCP listener, reports ready, and on shutdown ends every
// session and closes them.
func (s *SFU) Service() service.Service {
	return service.Service{Name: "stream-sfu", Run: s.run, Status: func() any { return s.Status() }}
}

func (s *SFU) run(ctx context.Context, h *service.Health) error {
	t, err := openTransport(s.cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.t = t
	s.mu.Unlock()
	tcp := t.tcpAddr()
	if tcp == "" {
		tcp = "off"
	}
	h.Ready(fmt.Sprintf("WHIP at %s, WHEP at %s/{device}; media on UDP %s, ICE-TCP %s", s.cfg.WHIPPath, s.cfg.WHEPPath, t.udpAddr(), tcp))
	<-ctx.Done()
	s.shutdown()
	return nil
}

// metrics are the SFU's Prometheus series.
type metrics struct {
	sessions, viewers                           prometheus.Gauge
	bytesIn, bytesOut, packetsLost, nacksServed prometheus.Counter
	plisForwarded, plisSuppressed, iceRestarts  prometheus.Counter
	messagesIn                                  prometheus.Counter
	dropped, rejected                           *prometheus.CounterVec
	forwardDelay                                prometheus.Histogram
}

// newMetrics creates the series and registers them on reg, if any.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_sfu_" + name, Help: help})
	}
	m := &metrics{
		sessions:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "lifeline_sfu_sessions", Help: "Live WHIP sessions (boxes publishing)."}),
		viewers:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "lifeline_sfu_viewers", Help: "Live WHEP sessions (viewers watching)."}),
		bytesIn:        counter("rtp_received_bytes_total", "RTP bytes received from boxes."),
		bytesOut:       counter("rtp_sent_bytes_total", "RTP bytes sent to viewers."),
		packetsLost:    counter("packets_lost_total", "RTP packets missing from boxes on arrival, before retransmission."),
		nacksServed:    counter("nacks_served_total", "Packets retransmitted to viewers from the packet cache."),
		plisForwarded:  counter("plis_forwarded_total", "Keyframe requests sent to boxes."),
		plisSuppressed: counter("plis_suppressed_total", "Keyframe requests not sent because one was sent within the keyframe interval."),
		iceRestarts:    counter("ice_restarts_total", "ICE restarts through PATCH."),
		messagesIn:     counter("messages_received_total", "Data channel messages received from boxes."),
		forwardDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lifeline_sfu_forward_delay_seconds",
			Help:    "Time a live packet spends in the hub, from the box's track to the viewer's socket (keyframe bursts excluded).",
			Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1},
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lifeline_sfu_viewer_dropped_total", Help: "What a slow viewer did not get: rtp packets or data messages.",
		}, []string{"what"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lifeline_sfu_requests_refused_total", Help: "WHIP and WHEP requests refused, by HTTP status.",
		}, []string{"status"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.sessions, m.viewers, m.bytesIn, m.bytesOut, m.packetsLost, m.nacksServed,
		m.plisForwarded, m.plisSuppressed, m.iceRestarts, m.messagesIn, m.dropped, m.rejected, m.forwardDelay} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sfu: register metrics: %w", err)
		}
	}
	return m, nil
}
