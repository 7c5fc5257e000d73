package linkemu

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Shape is how one direction of the link treats packets: a bottleneck of RateBps with a
// modem buffer of QueueBytes in front of it (tail drop when full), then a propagation
// delay of Delay ± Jitter, random loss and optional burst loss.
type Shape struct {
	// RateBps is the bottleneck rate in bits per second of IP packets; 0 means no limit.
	RateBps int64
	// QueueBytes is the modem buffer in front of the bottleneck. A packet that would
	// make the backlog exceed it is dropped (tail drop). 0 means DefaultQueue(RateBps).
	QueueBytes int
	// Delay is the one-way propagation delay added after the bottleneck.
	Delay time.Duration
	// Jitter spreads each packet's delay uniformly over Delay-Jitter … Delay+Jitter.
	Jitter time.Duration
	// Reorder lets jitter reorder packets. Without it a packet never overtakes the
	// one before it, as on a real radio bearer with in-order delivery.
	Reorder bool
	// Loss is the probability that a packet is lost at random, independently.
	Loss float64
	// Burst, when set, adds Gilbert–Elliott burst loss on top of Loss.
	Burst *GilbertElliott
}

// GilbertElliott is a two-state burst-loss model. Before each packet the channel moves
// from good to bad with probability P and from bad to good with probability R; the
// packet is then lost with LossGood or LossBad, depending on the state.
type GilbertElliott struct {
	P, R              float64
	LossGood, LossBad float64
}

// BurstLoss returns a Gilbert–Elliott model that loses a fraction avg of packets in
// bursts of meanBurst packets on average (every packet in the bad state is lost).
func BurstLoss(avg, meanBurst float64) *GilbertElliott {
	if meanBurst < 1 {
		meanBurst = 1
	}
	r := 1 / meanBurst
	return &GilbertElliott{P: avg * r / (1 - avg), R: r, LossBad: 1}
}

// MeanLoss returns the long-run fraction of packets the model loses.
func (g *GilbertElliott) MeanLoss() float64 {
	if g.P+g.R == 0 {
		return g.LossGood
	}
	bad := g.P / (g.P + g.R)
	return bad*g.LossBad + (1-bad)*g.LossGood
}

// DefaultQueue is the modem buffer used when a Shape leaves QueueBytes at 0: 100 ms
// worth of the rate (a modem buffer big enough for TCP to fill the pipe, as real ones
// are), at least 16 KiB, and 1 MiB when the rate is unlimited.
func DefaultQueue(rateBps int64) int {
	if rateBps <= 0 {
		return 1 << 20
	}
	q := int(rateBps / 8 / 10)
	if q < 16<<10 {
		q = 16 << 10
	}
	return q
}

func (s Shape) queueLimit() int {
	if s.QueueBytes > 0 {
		return s.QueueBytes
	}
	return DefaultQueue(s.RateBps)
}

// Validate reports the first field that makes no sense.
func (s Shape) Validate() error {
	switch {
	case s.RateBps < 0:
		return fmt.Errorf("rate %d bit/s is negative", s.RateBps)
	case s.QueueBytes < 0:
		return fmt.Errorf("queue %d bytes is negative", s.QueueBytes)
	case s.Delay < 0 || s.Jitter < 0:
		return fmt.Errorf("delay %v ± %v is negative", s.Delay, s.Jitter)
	case s.Loss < 0 || s.Loss > 1:
		return fmt.Errorf("loss %v is not a probability", s.Loss)
	}
	if g := s.Burst; g != nil {
		for _, p := range []float64{g.P, g.R, g.LossGood, g.LossBad} {
			if p < 0 || p > 1 {
				return fmt.Errorf("burst loss parameter %v is not a probability", p)
			}
		}
	}
	return nil
}

// Outages schedules outages: the first starts First after the link starts, then one
// every Every (0: only one), each lasting For. With NewAddress the box comes back from
// each outage with a new address, as after a 5G handover or a modem re-attach.
type Outages struct {
	First, Every, For time.Duration
	NewAddress        bool
}

// Profile is a whole link: Up is box → hub (the uplink), Down is hub → box.
type Profile struct {
	Name     string
	Up, Down Shape
	Outages  Outages
}

// String describes the schedule, e.g. "3s every 1m0s from 30s, new address".
func (o Outages) String() string {
	if o.For <= 0 {
		return "none"
	}
	s := fmt.Sprintf("%v at %v", o.For, o.First)
	if o.Every > 0 {
		s = fmt.Sprintf("%v every %v from %v", o.For, o.Every, o.First)
	}
	if o.NewAddress {
		s += ", new address"
	}
	return s
}

// Validate reports the first setting that makes no sense, naming its direction.
func (p Profile) Validate() error {
	if err := p.Up.Validate(); err != nil {
		return fmt.Errorf("profile %q uplink: %w", p.Name, err)
	}
	if err := p.Down.Validate(); err != nil {
		return fmt.Errorf("profile %q downlink: %w", p.Name, err)
	}
	o := p.Outages
	if o.First < 0 || o.Every < 0 || o.For < 0 {
		return fmt.Errorf("profile %q: negative outage schedule %+v", p.Name, o)
	}
	if o.Every > 0 && o.For >= o.Every {
		return fmt.Errorf("profile %q: outages of %v every %v never end", p.Name, o.For, o.Every)
	}
	return nil
}

// RTT returns the round-trip propagation delay (both directions' Delay), without
// queueing or serialisation.
func (p Profile) RTT() time.Duration { return p.Up.Delay + p.Down.Delay }

// WithRTT returns p with its delay split evenly between the two directions.
func (p Profile) WithRTT(rtt time.Duration) Profile {
	p.Up.Delay = rtt / 2
	p.Down.Delay = rtt - rtt/2
	return p
}

// WithLoss returns p with random loss loss in both directions.
func (p Profile) WithLoss(loss float64) Profile {
	p.Up.Loss, p.Down.Loss = loss, loss
	return p
}

// The profiles of DESIGN.md. Only the uplink figures are given there; the downlink
// rates are ours: 100 Mbit/s on urban 5G and 10 Mbit/s on rural 4G, about five and
// three times the uplink, as on real networks. The round trip is split evenly, jitter
// is ±2 ms on 5G and ±5 ms on 4G, and loss applies to both directions.
var profiles = map[string]func() Profile{
	"5g-urban": FiveGUrban,
	"4g-rural": FourGRural,
	"handover": Handover,
	"tunnel":   Tunnel,
}

// FiveGUrban is "5g-urban": uplink 20 Mbit/s, downlink 100 Mbit/s, RTT 40 ms, loss 0.1 %.
func FiveGUrban() Profile {
	return Profile{
		Name: "5g-urban",
		Up:   Shape{RateBps: 20e6, Delay: 20 * time.Millisecond, Jitter: 2 * time.Millisecond, Loss: 0.001},
		Down: Shape{RateBps: 100e6, Delay: 20 * time.Millisecond, Jitter: 2 * time.Millisecond, Loss: 0.001},
	}
}

// FourGRural is "4g-rural": uplink 3 Mbit/s, downlink 10 Mbit/s, RTT 90 ms, loss 1 %.
func FourGRural() Profile {
	return Profile{
		Name: "4g-rural",
		Up:   Shape{RateBps: 3e6, Delay: 45 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.01},
		Down: Shape{RateBps: 10e6, Delay: 45 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.01},
	}
}

// Handover is "handover": 5g-urban with a 3 s outage every 60 s, after each of which the
// box has a new address. The first comes 30 s after the start, so that a transfer of
// half a minute or more meets at least one.
func Handover() Profile {
	p := FiveGUrban()
	p.Name = "handover"
	p.Outages = Outages{First: 30 * time.Second, Every: 60 * time.Second, For: 3 * time.Second, NewAddress: true}
	return p
}

// Tunnel is "tunnel": 5g-urban with one 30 s outage starting 10 s after the start, the
// box keeping its address (the modem stays attached, the radio is gone).
func Tunnel() Profile {
	p := FiveGUrban()
	p.Name = "tunnel"
	p.Outages = Outages{First: 10 * time.Second, For: 30 * time.Second}
	return p
}

// ProfileByName returns the named profile of DESIGN.md, or an error listing the names.
func ProfileByName(name string) (Profile, error) {
	f, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("linkemu: unknown profile %q (known: %s)", name, strings.Join(ProfileNames(), ", "))
	}
	return f(), nil
}

// ProfileNames lists the names ProfileByName knows, sorted.
func ProfileNames() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
