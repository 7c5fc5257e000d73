package hostaddr

import (
	"net"
	"testing"
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
