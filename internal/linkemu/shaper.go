package linkemu

import (
	"math/rand/v2"
	"time"
)

// Drop says why the link lost a packet.
type Drop int

// The reasons a packet is lost.
const (
	Delivered  Drop = iota // not dropped
	DropQueue              // the modem buffer was full (tail drop)
	DropLoss               // random or burst loss on the air
	DropOutage             // the link was down
	DropStale              // sent from or to a box address the network no longer routes
)

func (d Drop) String() string {
	switch d {
	case Delivered:
		return "delivered"
	case DropQueue:
		return "queue"
	case DropLoss:
		return "loss"
	case DropOutage:
		return "outage"
	case DropStale:
		return "stale_address"
	}
	return "unknown"
}

// Verdict is what a Shaper decided for one packet.
type Verdict struct {
	Drop Drop
	// Depart is when the packet's last bit leaves the bottleneck (also set for DropLoss:
	// a packet lost on the air still used its air time).
	Depart time.Time
	// Deliver is when the far end receives the packet, if it is not dropped.
	Deliver time.Time
}

// Shaper is one direction of a link as a pure state machine: for each packet handed to
// Admit with its arrival time it decides whether the link drops it and, if not, when the
// far end receives it. It reads no clock and starts no goroutine, so tests drive it with
// made-up times and a seeded random source. It is not safe for concurrent use.
type Shaper struct {
	shape Shape
	rng   *rand.Rand

	busyUntil time.Time // when the bottleneck has sent everything admitted so far
	lastOut   time.Time // latest delivery time handed out, to keep order
	geBad     bool      // Gilbert–Elliott state

	down      bool
	downUntil time.Time
}

// NewShaper returns a shaper for shape whose random decisions come from rng.
func NewShaper(shape Shape, rng *rand.Rand) *Shaper {
	return &Shaper{shape: shape, rng: rng}
}

// Shape returns the current shape.
func (s *Shaper) Shape() Shape { return s.shape }

// SetShape changes the shape from now on. Packets already admitted keep their times.
func (s *Shaper) SetShape(shape Shape) { s.shape = shape }

// SetDown takes the link down until SetDown(false), or brings it back up (also ending
// an outage started by OutageUntil).
func (s *Shaper) SetDown(down bool) {
	s.down = down
	if !down {
		s.downUntil = time.Time{}
	}
}

// OutageUntil takes the link down until t.
func (s *Shaper) OutageUntil(t time.Time) {
	if t.After(s.downUntil) {
		s.downUntil = t
	}
}

// Down reports whether the link is down at now.
func (s *Shaper) Down(now time.Time) bool { return s.down || now.Before(s.downUntil) }

// Backlog returns the bytes waiting in the modem buffer at now.
func (s *Shaper) Backlog(now time.Time) int {
	if s.shape.RateBps <= 0 || !s.busyUntil.After(now) {
		return 0
	}
	return int(int64(s.busyUntil.Sub(now)) * s.shape.RateBps / 8 / int64(time.Second))
}

// Admit decides the fate of a packet of size bytes arriving at now. Arrival times must
// not go backwards.
func (s *Shaper) Admit(now time.Time, size int) Verdict {
	if s.Down(now) {
		// A radio outage loses what is sent into it; the modem does not hold it.
		return Verdict{Drop: DropOutage}
	}
	depart := now
	if rate := s.shape.RateBps; rate > 0 {
		if s.Backlog(now)+size > s.shape.queueLimit() {
			return Verdict{Drop: DropQueue}
		}
		start := now
		if s.busyUntil.After(start) {
			start = s.busyUntil
		}
		depart = start.Add(serialisation(size, rate))
		s.busyUntil = depart
	}
	if s.lost() {
		return Verdict{Drop: DropLoss, Depart: depart}
	}
	deliver := depart.Add(s.shape.Delay)
	if j := s.shape.Jitter; j > 0 {
		deliver = deliver.Add(time.Duration(s.rng.Int64N(int64(2*j)+1)) - j)
		if deliver.Before(depart) {
			deliver = depart
		}
	}
	if !s.shape.Reorder && deliver.Before(s.lastOut) {
		deliver = s.lastOut
	}
	if deliver.After(s.lastOut) {
		s.lastOut = deliver
	}
	return Verdict{Drop: Delivered, Depart: depart, Deliver: deliver}
}

// lost draws this packet's loss: first the Gilbert–Elliott state moves, then both the
// burst and the independent loss get their chance.
func (s *Shaper) lost() bool {
	lost := false
	if g := s.shape.Burst; g != nil {
		if s.geBad {
			s.geBad = s.rng.Float64() >= g.R
		} else {
			s.geBad = s.rng.Float64() < g.P
		}
		p := g.LossGood
		if s.geBad {
			p = g.LossBad
		}
		lost = p > 0 && s.rng.Float64() < p
	}
	if p := s.shape.Loss; p > 0 && s.rng.Float64() < p {
		lost = true
	}
	return lost
}

// serialisation is how long size bytes take at rate bit/s.
func serialisation(size int, rate int64) time.Duration {
	return time.Duration(int64(size) * 8 * int64(time.Second) / rate)
}
