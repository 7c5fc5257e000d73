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
// each code for GET /api/v1/vitals.
type Bus struct {
	mu      sync.Mutex
	subs    map[*Subscription]struct{}
	latest  map[Code]*Numeric
	sources map[Code]string

	published *prometheus.CounterVec
	dropped   *prometheus.CounterVec
}

// NewBus returns an empty bus, registering lifeline_telemetry_bus_* metrics on reg
// (nil: no metrics).
func NewBus(reg prometheus.Registerer) *Bus {
	b := &Bus{
		subs:    make(map[*Subscription]struct{}),
		latest:  make(map[Code]*Numeric),
		sources: make(map[Code]string),
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
		if prev, had := b.latest[n.Code]; !had || !n.Time().Before(prev.Time()) {
			b.latest[n.Code] = n
			b.sources[n.Code] = source
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

// Latest returns the most recent numeric of every code seen, sorted by code name. The
// returned numerics must not be modified.
func (b *Bus) Latest() []*Numeric {
	b.mu.Lock()
	out := make([]*Numeric, 0, len(b.latest))
	for _, n := range b.latest {
		out = append(out, n)
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Code.Name() < out[j].Code.Name() })
	return out
}
