package linkemu

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

// TestPumpAdmit drives one direction's admission without devices: packets from or to a
// box address the network no longer routes are dropped as stale, the corruption hook
// hits the n-th packet with a payload (bare ACKs do not count), and drops are counted by
// reason.
func TestPumpAdmit(t *testing.T) {
	box := netip.MustParseAddr("10.201.0.3")
	current := func() netip.Addr { return box }
	up := newPump(Uplink, nil, nil, NewShaper(Shape{}, seeded(1)), seeded(2), current, slog.New(slog.DiscardHandler))
	down := newPump(Downlink, nil, nil, NewShaper(Shape{}, seeded(1)), seeded(2), current, slog.New(slog.DiscardHandler))
	old := netip.MustParseAddr("10.201.0.2")

	up.admit(t0, buildIPv4(protoUDP, old, hubAddr, []byte("x")))
	down.admit(t0, buildIPv4(protoUDP, hubAddr, old, []byte("x")))
	if up.dropStale.Load() != 1 || down.dropStale.Load() != 1 || len(up.pending)+len(down.pending) != 0 {
		t.Fatalf("stale: up %d down %d, pending %d/%d", up.dropStale.Load(), down.dropStale.Load(), len(up.pending), len(down.pending))
	}

	up.corruptIn, up.corruptFix = 2, true
	pkts := [][]byte{
		buildIPv4(protoTCP, box, hubAddr, nil),         // bare ACK: not counted
		buildIPv4(protoTCP, box, hubAddr, []byte("a")), // first with payload
		buildIPv4(protoTCP, box, hubAddr, nil),
		buildIPv4(protoTCP, box, hubAddr, []byte("bbbb")), // second: corrupted
		buildIPv4(protoTCP, box, hubAddr, []byte("cccc")),
		{0x60, 0, 0, 0}, // not IPv4: carried as it is
	}
	for _, p := range pkts {
		up.admit(t0, append([]byte(nil), p...))
	}
	if up.corrupted.Load() != 1 || len(up.pending) != len(pkts) {
		t.Fatalf("corrupted %d, pending %d", up.corrupted.Load(), len(up.pending))
	}
	for len(up.pending) > 0 {
		it := up.pop()
		want := pkts[it.seq-1]
		if changed := string(it.pkt) != string(want); changed != (it.seq == 4) {
			t.Errorf("packet %d changed=%v", it.seq, changed)
		}
	}

	up.withShaper(func(s *Shaper) { s.OutageUntil(t0.Add(time.Second)) })
	up.admit(t0, buildIPv4(protoUDP, box, hubAddr, []byte("x")))
	if up.dropOutage.Load() != 1 {
		t.Errorf("outage drops %d, want 1", up.dropOutage.Load())
	}
	st := up.stats()
	if st.Dropped() != st.DroppedStale+st.DroppedOutage || st.DroppedStale != 1 || st.DroppedOutage != 1 {
		t.Errorf("stats %+v", st)
	}
}
