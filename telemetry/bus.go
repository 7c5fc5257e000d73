package telemetry

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Message is one event on the bus with the monitor it came from.
type Message struct {
	Source string // monitor name, e.g. "monitor0" or the port path
	Event  Event
}

// Bus fans events out from the monitor readers to their consumers (the live streamer,
// the recorder). Each subscriber has a bounded buffer; when a subscriber falls behind, the
// oldest message in its buffer is dropped and counted, so a slow consumer never blocks
// the reader (a monitor does not wait for us). The bus also keeps the latest numeric of
// each source, code and channel for GET /api/v1/vitals.
type Bus struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	latest map[latestKey]*Numeric

	published *prometheus.CounterVec
	dropped   *prometheus.CounterVec
}

// NewBus returns an empty bus, registering lifeline_telemetry_bus_* metrics on reg
// (nil: no metrics).
func NewBus(reg prometheus.Registerer) *Bus {
	b := &Bus{
		subs:   make(map[*Subscription]struct{}),
		latest: make(map[latestKey]*Numeric),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lifeline_telemetry_bus_published_total",
			Help: "Events published on the telemetry bus, by kind.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lifeline_telemetry_bus_dropped_total",
			Help: "Events dropped because a subscriber's buffer was full (oldest dropped first), by subscriber.",
		}, []string{"subscriber"}),
	}
	if reg != nil {
		reg.MustRegister(b.published, b.dropped)
	}
	return b
}

// Subscription is one consumer's bounded view of the bus.
type Subscription struct {
	Name    string
	c       chan Message
	bus     *Bus
	dropped uint64 // guarded by bus.mu
}

// C returns the channel to receive from. It is closed by Unsubscribe.
func (s *Subscription) C() <-chan Message { return s.c }

// Dropped returns how many messages this subscriber lost to a full buffer.
func (s *Subscription) Dropped() uint64 {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.dropped
}

// Unsubscribe removes the subscription and closes its channel.
func (s *Subscription) Unsubscribe() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	if _, ok := s.bus.subs[s]; ok {
		delete(s.bus.subs, s)
		close(s.c)
	}
}

// Subscribe adds a consumer with a buffer of size messages (at least 1). Size it for the
// longest stall the consumer may have: 12 ECG leads at 500 Hz in blocks of 50 samples
// make 120 wave messages a second.
func (b *Bus) Subscribe(name string, size int) *Subscription {
	if size < 1 {
		size = 1
	}
	s := &Subscription{Name: name, c: make(chan Message, size), bus: b}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish hands ev to every subscriber without blocking.
func (b *Bus) Publish(source string, ev Event) {
	m := Message{Source: source, Event: ev}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n, ok := ev.(*Numeric); ok {
		// One value per channel: two temperature probes stay two values.
		k := latestKey{source: source, code: n.Code, channel: n.Channel.ID}
		if prev, had := b.latest[k]; !had || !n.Time().Before(prev.Time()) {
			b.latest[k] = n
		}
	}
	b.published.WithLabelValues(ev.Kind().String()).Inc()
	for s := range b.subs {
		select {
		case s.c <- m:
			continue
		default:
		}
		// Full: drop the oldest to make room. Only Publish sends, under b.mu, so once
		// one message is out the send below has room.
		select {
		case <-s.c:
			s.dropped++
			b.dropped.WithLabelValues(s.Name).Inc()
		default:
		}
		select {
		case s.c <- m:
		default:
			s.dropped++
			b.dropped.WithLabelValues(s.Name).Inc()
		}
	}
}

// latestKey tells the values GET /api/v1/vitals keeps apart.
type latestKey struct {
	source  string
	code    Code
	channel string
}

// LatestValue is the most recent numeric of one source, code and channel.
type LatestValue struct {
	Source  string
	Numeric *Numeric
	// Primary is set on the one value per code PrimaryOf picks, for consumers that
	// want "the" heart rate.
	Primary bool
}

// Latest returns the most recent numeric of every source, code and channel seen, in the
// order of LatestValues. The returned numerics must not be modified.
func (b *Bus) Latest() []*Numeric {
	vs := b.LatestValues()
	out := make([]*Numeric, len(vs))
	for i, v := range vs {
		out[i] = v.Numeric
	}
	return out
}

// LatestValues returns the most recent numeric of every source, code and channel seen,
// sorted by name, then source, then channel in the monitor's order, with the primary
// value of each code marked. The numerics must not be modified.
func (b *Bus) LatestValues() []LatestValue {
	b.mu.Lock()
	out := make([]LatestValue, 0, len(b.latest))
	for k, n := range b.latest {
		out = append(out, LatestValue{Source: k.source, Numeric: n})
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, c := out[i], out[j]
		if na, nc := NameOf(a.Numeric.Code, a.Numeric.Ref), NameOf(c.Numeric.Code, c.Numeric.Ref); na != nc {
			return na < nc
		}
		if a.Numeric.Code != c.Numeric.Code {
			return a.Numeric.Code < c.Numeric.Code
		}
		if a.Source != c.Source {
			return a.Source < c.Source
		}
		return CompareChannelIDs(a.Numeric.Channel.ID, c.Numeric.Channel.ID) < 0
	})
	markPrimary(out)
	return out
}

// markPrimary sets Primary on the value PrimaryOf picks among those of each code.
func markPrimary(ls []LatestValue) {
	byCode := map[Code][]int{}
	for i, l := range ls {
		byCode[l.Numeric.Code] = append(byCode[l.Numeric.Code], i)
	}
	for _, idx := range byCode {
		ns := make([]*Numeric, len(idx))
		srcs := make([]string, len(idx))
		for k, i := range idx {
			ns[k], srcs[k] = ls[i].Numeric, ls[i].Source
		}
		p := PrimaryOf(ns, srcs)
		for _, i := range idx {
			ls[i].Primary = ls[i].Numeric == p
		}
	}
}
