package dimse_test

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"lifeline/dicom/dimse"
	"lifeline/dicom/spool"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// dialFrom connects to the box from the loopback address src.
func dialFrom(t *testing.T, b *box, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAllowListAndConnectionCap: an address outside dicom.allowed_addresses is closed
// on arrival without a byte. Connections that never send their request fill the
// connection cap in vain: DCMTK's storescu takes the oldest one's place and is served.
// Associations that fill the cap keep it: storescu is then answered with a transient
// A-ASSOCIATE-RJ at once (not after its request is read, nor by a hang), and served
// once they go. Each kind of refusal is counted, and logged once, not per connection.
func TestAllowListAndConnectionCap(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	b := startBox(t, dimse.SCPConfig{AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/30")},
		MaxConnections: 8, MaxConnectionsPerAddress: 4, MaxAssociations: 8}, spool.Config{})

	for i := 0; i < 20; i++ {
		c := dialFrom(t, b, "127.0.0.9")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(make([]byte, 16))
		if n != 0 || err == nil || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("a stranger's connection: read %d bytes, %v; want it closed at once", n, err)
		}
	}
	if got := counter(t, b.reg, "lifeline_dicom_refused_total", "address_not_allowed"); got != 20 {
		t.Errorf("address_not_allowed refusals = %v, want 20", got)
	}

	// Eight silent connections fill the cap; storescu displaces the oldest.
	var silent []net.Conn
	for _, src := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3", "127.0.0.3", "127.0.0.3"} {
		silent = append(silent, dialFrom(t, b, src))
		wait.For(t, 5*time.Second, "the box to admit the silent connection", func() bool { return b.scp.Status().OpenConnections == len(silent) })
	}
	run(t, storescu, "-aec", "LIFELINE", "127.0.0.1", b.port, storescuFile(t, "2.25.700"))
	silent[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := silent[0].Read(make([]byte, 16)); n != 0 || err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("the oldest silent connection was not the one closed: read %d, %v", n, err)
	}
	if got := counter(t, b.reg, "lifeline_dicom_refused_total", "evicted_before_association"); got != 1 {
		t.Errorf("evictions = %v, want 1", got)
	}
	for _, c := range silent {
		c.Close()
	}
	wait.For(t, 5*time.Second, "the silent connections to be gone", func() bool { return b.scp.Status().OpenConnections == 0 })

	// Eight associations fill the cap; they are not displaced, storescu is told why.
	for i := 0; i < 8; i++ {
		if _, rj := squat(t, b, []string{"127.0.0.2", "127.0.0.3"}[i%2], fmt.Sprintf("SQUAT%d", i), 50*time.Millisecond); rj != nil {
			t.Fatalf("association %d refused: %+v", i, rj)
		}
	}
	f := storescuFile(t, "2.25.701")
	start := time.Now()
	out, err := exec.Command(storescu, "-aec", "LIFELINE", "127.0.0.1", b.port, f).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Association Rejected") || !strings.Contains(string(out), "Transient") {
		t.Errorf("storescu at the connection cap: %v\n%s", err, out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("storescu waited %v for its refusal", d)
	}
	if got := counter(t, b.reg, "lifeline_dicom_refused_total", "connection_limit"); got != 1 {
		t.Errorf("connection_limit refusals = %v, want 1", got)
	}
	if n := strings.Count(b.logs.String(), "DICOM connections refused"); n != 3 {
		t.Errorf("%d log lines for refusals of three kinds, want 3 (one per kind within the interval)", n)
	}
}
