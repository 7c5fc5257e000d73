package hostaddr

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"lifeline/internal/linkemu"
	"lifeline/internal/peers"
)

// TestFingerprintIsStable: two readings with no change between them agree, and a
// machine with a non-loopback address does not read as "cannot read" (0).
func TestFingerprintIsStable(t *testing.T) {
	a, b := Fingerprint(), Fingerprint()
	if a != b {
		t.Fatalf("two readings differ with nothing changed: %x, %x", a, b)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() && a == 0 {
			t.Fatalf("fingerprint 0 with %s present", ipn.IP)
		}
	}
}

// TestFingerprintFollowsAnAddressChange reads the fingerprint inside the box's network
// namespace of an emulated link before and after the link gives the box a new address,
// as a handover does: the readings differ, and a reading with no change agrees.
func TestFingerprintFollowsAnAddressChange(t *testing.T) {
	peers.NeedRoot(t)
	peers.Need(t, "ip")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	link, err := linkemu.Start(ctx, linkemu.FiveGUrban(), linkemu.Options{Logger: slog.New(slog.DiscardHandler), Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	read := func() uint64 {
		var fp uint64
		if err := link.InBox(func() error { fp = Fingerprint(); return nil }); err != nil {
			t.Fatal(err)
		}
		return fp
	}
	before, again := read(), read()
	if before == 0 || before != again {
		t.Fatalf("readings in the box's namespace with nothing changed: %x, %x", before, again)
	}
	if _, err := link.ChangeBoxAddress(); err != nil {
		t.Fatal(err)
	}
	if after := read(); after == before {
		t.Fatalf("the box's address changed (now %s) and the fingerprint stayed %x", link.BoxAddr(), after)
	}
}
