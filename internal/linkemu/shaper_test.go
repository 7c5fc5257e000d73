package linkemu

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

// TestShaperSerialisesAtRate: packets arriving together leave one serialisation time
// apart, and reach the far end Delay later.
func TestShaperSerialisesAtRate(t *testing.T) {
	s := NewShaper(Shape{RateBps: 8e6, Delay: 10 * time.Millisecond, QueueBytes: 1 << 20}, seeded(1))
	for i := 1; i <= 10; i++ {
		v := s.Admit(t0, 1000) // 1000 bytes at 8 Mbit/s: 1 ms each
		if v.Drop != Delivered {
			t.Fatalf("packet %d dropped: %v", i, v.Drop)
		}
		if want := t0.Add(time.Duration(i) * time.Millisecond); !v.Depart.Equal(want) {
			t.Errorf("packet %d departs at +%v, want +%v", i, v.Depart.Sub(t0), want.Sub(t0))
		}
		if want := v.Depart.Add(10 * time.Millisecond); !v.Deliver.Equal(want) {
			t.Errorf("packet %d delivered at +%v, want +%v", i, v.Deliver.Sub(t0), want.Sub(t0))
		}
	}
	if got := s.Backlog(t0); got != 10000 {
		t.Errorf("backlog after 10 packets = %d bytes, want 10000", got)
	}
	if got := s.Backlog(t0.Add(4 * time.Millisecond)); got != 6000 {
		t.Errorf("backlog 4 ms later = %d bytes, want 6000", got)
	}
	// After the queue drained, a packet goes straight through.
	v := s.Admit(t0.Add(time.Second), 1000)
	if want := t0.Add(time.Second + time.Millisecond); !v.Depart.Equal(want) {
		t.Errorf("idle link: departs at +%v, want +%v", v.Depart.Sub(t0), want.Sub(t0))
	}
}

// TestShaperTailDrop: a burst bigger than the modem buffer loses its tail, and the
// buffer takes packets again as it drains.
func TestShaperTailDrop(t *testing.T) {
	s := NewShaper(Shape{RateBps: 8e6, QueueBytes: 5000}, seeded(1))
	var kept, dropped int
	for range 20 {
		switch v := s.Admit(t0, 1000); v.Drop {
		case Delivered:
			kept++
		case DropQueue:
			dropped++
		default:
			t.Fatalf("unexpected drop %v", v.Drop)
		}
	}
	if kept != 5 || dropped != 15 {
		t.Fatalf("burst of 20 into a 5-packet buffer: kept %d dropped %d, want 5 and 15", kept, dropped)
	}
	// 2 ms later two packets have left: room for two more, not three.
	later := t0.Add(2 * time.Millisecond)
	for i, want := range []Drop{Delivered, Delivered, DropQueue} {
		if v := s.Admit(later, 1000); v.Drop != want {
			t.Errorf("packet %d after draining: %v, want %v", i, v.Drop, want)
		}
	}
}

// TestShaperJitterKeepsOrder: with jitter and without Reorder, delivery times never go
// backwards, and every delay stays within Delay ± Jitter (or later, to keep order).
func TestShaperJitterKeepsOrder(t *testing.T) {
	sh := Shape{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}
	s := NewShaper(sh, seeded(7))
	var last time.Time
	spread := map[bool]bool{}
	for i := range 2000 {
		// Dense arrivals (the order matters), then sparse ones (the spread shows).
		now := t0.Add(time.Duration(i) * 100 * time.Microsecond)
		if i >= 1000 {
			now = t0.Add(time.Second + time.Duration(i)*20*time.Millisecond)
		}
		v := s.Admit(now, 100)
		if v.Deliver.Before(last) {
			t.Fatalf("packet %d delivered before the one ahead of it", i)
		}
		last = v.Deliver
		d := v.Deliver.Sub(now)
		if d < sh.Delay-sh.Jitter {
			t.Fatalf("packet %d delayed %v, below %v", i, d, sh.Delay-sh.Jitter)
		}
		if i >= 1000 {
			spread[d > sh.Delay] = true
		}
	}
	if !spread[true] || !spread[false] {
		t.Error("jitter never moved a packet to one side of the delay")
	}

	// With Reorder, the same arrivals overtake each other sometimes.
	sh.Reorder = true
	s = NewShaper(sh, seeded(7))
	overtaken := 0
	last = time.Time{}
	for i := range 2000 {
		v := s.Admit(t0.Add(time.Duration(i)*100*time.Microsecond), 100)
		if v.Deliver.Before(last) {
			overtaken++
		}
		if v.Deliver.After(last) {
			last = v.Deliver
		}
	}
	if overtaken == 0 {
		t.Error("Reorder set, but no packet overtook another")
	}
}

// TestShaperRandomLoss: the fraction lost is the configured probability, within four
// standard deviations, and lost packets still use their air time.
func TestShaperRandomLoss(t *testing.T) {
	const n, p = 100000, 0.01
	s := NewShaper(Shape{RateBps: 1e9, Loss: p}, seeded(3))
	lost := 0
	for i := range n {
		v := s.Admit(t0.Add(time.Duration(i)*time.Millisecond), 100)
		if v.Drop == DropLoss {
			lost++
			if v.Depart.IsZero() {
				t.Fatal("a lost packet has no departure time")
			}
		}
	}
	sd := math.Sqrt(n * p * (1 - p))
	if math.Abs(float64(lost)-n*p) > 4*sd {
		t.Errorf("lost %d of %d, want %.0f ± %.0f", lost, n, n*p, 4*sd)
	}
}

// TestShaperBurstLoss: Gilbert–Elliott loss has the configured mean, and comes in
// bursts of the configured mean length.
func TestShaperBurstLoss(t *testing.T) {
	const n = 200000
	g := BurstLoss(0.05, 4)
	if m := g.MeanLoss(); math.Abs(m-0.05) > 1e-9 {
		t.Fatalf("BurstLoss(0.05, 4).MeanLoss() = %v", m)
	}
	s := NewShaper(Shape{Burst: g}, seeded(5))
	lost, bursts, run := 0, 0, 0
	for i := range n {
		if s.Admit(t0.Add(time.Duration(i)*time.Millisecond), 100).Drop == DropLoss {
			lost++
			run++
		} else if run > 0 {
			bursts++
			run = 0
		}
	}
	frac, mean := float64(lost)/n, float64(lost)/float64(bursts)
	t.Logf("burst loss: %.4f lost, mean burst %.2f packets", frac, mean)
	if math.Abs(frac-0.05) > 0.005 {
		t.Errorf("lost fraction %.4f, want 0.05 ± 0.005", frac)
	}
	if math.Abs(mean-4) > 0.3 {
		t.Errorf("mean burst %.2f packets, want 4 ± 0.3", mean)
	}
}

// TestShaperOutage: an outage drops everything in its window and nothing after; SetDown
// holds until lifted.
func TestShaperOutage(t *testing.T) {
	s := NewShaper(Shape{Delay: time.Millisecond}, seeded(1))
	s.OutageUntil(t0.Add(100 * time.Millisecond))
	for _, c := range []struct {
		at   time.Duration
		want Drop
	}{{0, DropOutage}, {99 * time.Millisecond, DropOutage}, {100 * time.Millisecond, Delivered}, {time.Second, Delivered}} {
		if v := s.Admit(t0.Add(c.at), 100); v.Drop != c.want {
			t.Errorf("at +%v: %v, want %v", c.at, v.Drop, c.want)
		}
	}
	s.SetDown(true)
	if v := s.Admit(t0.Add(time.Hour), 100); v.Drop != DropOutage {
		t.Errorf("while down: %v", v.Drop)
	}
	s.SetDown(false)
	if v := s.Admit(t0.Add(time.Hour), 100); v.Drop != Delivered {
		t.Errorf("after SetDown(false): %v", v.Drop)
	}
}

// TestShaperRepeatable: the same seed and arrivals give the same verdicts, so a failing
// test can be replayed.
func TestShaperRepeatable(t *testing.T) {
	sh := Shape{RateBps: 10e6, QueueBytes: 20000, Delay: 5 * time.Millisecond, Jitter: time.Millisecond, Loss: 0.05, Burst: BurstLoss(0.02, 3)}
	run := func() []Verdict {
		s := NewShaper(sh, seeded(42))
		var out []Verdict
		for i := range 5000 {
			out = append(out, s.Admit(t0.Add(time.Duration(i)*300*time.Microsecond), 500+i%1000))
		}
		return out
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("verdict %d differs between runs: %+v vs %+v", i, a[i], b[i])
		}
	}
}

// TestShaperSetShape: a rate change applies to packets admitted after it.
func TestShaperSetShape(t *testing.T) {
	s := NewShaper(Shape{RateBps: 8e6}, seeded(1))
	s.Admit(t0, 1000) // departs +1 ms
	s.SetShape(Shape{RateBps: 4e6})
	v := s.Admit(t0, 1000) // queued behind the first, then 2 ms at the new rate
	if want := t0.Add(3 * time.Millisecond); !v.Depart.Equal(want) {
		t.Errorf("after SetShape: departs +%v, want +3ms", v.Depart.Sub(t0))
	}
}

// TestProfiles: the named profiles carry DESIGN.md's figures, and bad ones are refused.
func TestProfiles(t *testing.T) {
	for _, c := range []struct {
		name  string
		up    int64
		rtt   time.Duration
		loss  float64
		every time.Duration
		out   time.Duration
		addr  bool
	}{
		{"5g-urban", 20e6, 40 * time.Millisecond, 0.001, 0, 0, false},
		{"4g-rural", 3e6, 90 * time.Millisecond, 0.01, 0, 0, false},
		{"handover", 20e6, 40 * time.Millisecond, 0.001, 60 * time.Second, 3 * time.Second, true},
		{"tunnel", 20e6, 40 * time.Millisecond, 0.001, 0, 30 * time.Second, false},
	} {
		p, err := ProfileByName(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if p.Name != c.name || p.Up.RateBps != c.up || p.RTT() != c.rtt || p.Up.Loss != c.loss ||
			p.Outages.Every != c.every || p.Outages.For != c.out || p.Outages.NewAddress != c.addr {
			t.Errorf("%s = %+v", c.name, p)
		}
		if p.Down.RateBps < p.Up.RateBps {
			t.Errorf("%s: downlink %d below uplink %d", c.name, p.Down.RateBps, p.Up.RateBps)
		}
	}
	if _, err := ProfileByName("3g"); err == nil {
		t.Error("unknown profile accepted")
	}
	bad := FiveGUrban()
	bad.Up.Loss = 1.5
	if err := bad.Validate(); err == nil {
		t.Error("loss 1.5 accepted")
	}
	bad = FiveGUrban()
	bad.Outages = Outages{Every: time.Second, For: 2 * time.Second}
	if err := bad.Validate(); err == nil {
		t.Error("outages longer than their period accepted")
	}
	if p := FiveGUrban().WithRTT(91 * time.Millisecond); p.RTT() != 91*time.Millisecond {
		t.Errorf("WithRTT(91ms).RTT() = %v", p.RTT())
	}
}
