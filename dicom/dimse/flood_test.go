package dimse_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/dicom/dimse"
	"lifeline/internal/peers"
	"lifeline/internal/proclog"
	"lifeline/internal/wait"
)

// TestFloodBeforeAssociationIsBounded replays the attack of issue 16 item 1 against a
// real receiver process (this test binary re-executed as the box's SCP with its spool):
// 400 connections that each announce an A-ASSOCIATE-RQ and never finish it. It
// measures the receiver's peak resident memory (VmHWM) and checks that it stays
// bounded, that a modality is still served during the flood, that refusals are logged a few times rather than once per connection,
// and that the receiver serves normally once the flood is gone.
func TestFloodBeforeAssociationIsBounded(t *testing.T) {
	echoscu := peers.Need(t, "echoscu")[0]
	child, stderr, port := startChildSCP(t)
	addr := "127.0.0.1:" + port
	run(t, echoscu, "-aec", "LIFELINE", "127.0.0.1", port)
	base := vmHWM(t, child)

	// Stage 1: the reported attack, from one address: 400 × an unfinished 1 MiB request.
	conns := flood(t, addr, sourceAddrs(2, 1), 400, 1<<20)
	waitDrained(t, port)
	one := vmHWM(t, child)
	// The flood holds its connections; a modality elsewhere on the network still works.
	run(t, echoscu, "-aec", "LIFELINE", "127.0.0.1", port)
	closeAll(conns)
	resetHWM(t, child)

	// Stage 2: the worst the limits allow: 100 addresses × 4 connections, each holding
	// the largest A-ASSOCIATE-RQ the box reads, one byte short; each newcomer beyond
	// the cap displaces the oldest.
	conns = flood(t, addr, sourceAddrs(2, 100), 4, dimse.MaxAssociateLength)
	waitDrained(t, port)
	spread := vmHWM(t, child)
	// The cap is full of requests that never end; a modality takes the oldest's place.
	run(t, echoscu, "-aec", "LIFELINE", "127.0.0.1", port)
	closeAll(conns)
	wait.For(t, 10*time.Second, "the receiver to serve again after the flood", func() bool {
		return exec.Command(echoscu, "-aec", "LIFELINE", "127.0.0.1", port).Run() == nil
	})

	t.Logf("receiver peak RSS: %d KiB at rest, %d KiB after 400 × 1 MiB from one address, %d KiB after 100 addresses × 4 × %d bytes",
		base, one, spread, dimse.MaxAssociateLength)
	// KiB above the resting peak: 32 connections × 64 KiB requests and what the
	// garbage collector has not yet taken back; unbounded, the receiver grew by 700 MiB.
	bound := int64(24 << 10)
	if raceDetector {
		bound *= 3
	}
	if one-base > bound || spread-base > bound {
		t.Errorf("peak RSS grew by %d KiB and %d KiB under the floods, bound %d KiB", one-base, spread-base, bound)
	}
	if n := strings.Count(stderr.String(), "connections refused"); n == 0 || n > 10 {
		t.Errorf("%d log lines about refused connections for about 750 refusals, want 1 to 10 (rate-limited):\n%s", n, stderr.String())
	}
	// The connections held to the end fail one by one as the flood closes them; their
	// warnings are bounded too (20 per 10 s), so the whole flood writes a few dozen lines.
	if n := strings.Count(stderr.String(), "level=WARN"); n > 40 {
		t.Errorf("%d warnings for 800 connections, want at most 40", n)
	}
}

// TestTLSFloodBeforeAssociationIsBounded is the flood of stage 2 over DICOM TLS: each
// of 400 connections from 100 addresses completes its TLS handshake (which costs the
// receiver more than a plain accept) and then holds an unfinished 64 KiB request. The
// receiver's peak RSS stays bounded and a verifying echoscu is served meanwhile.
func TestTLSFloodBeforeAssociationIsBounded(t *testing.T) {
	echoscu := peers.Need(t, "echoscu")[0]
	state := t.TempDir()
	cert, certPEM := selfSigned(t, state)
	os.Rename(certPEM, filepath.Join(state, "tls.crt"))
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	child, _, port := startChildSCPIn(t, state)
	addr := "127.0.0.1:" + port
	tlsArgs := []string{"+tla", "-rc", "+cf", filepath.Join(state, "tls.crt"), "-aec", "LIFELINE", "127.0.0.1", port}
	run(t, echoscu, tlsArgs...)
	base := vmHWM(t, child)
	pool := x509.NewCertPool()
	pool.AddCert(must(x509.ParseCertificate(cert.Certificate[0])))
	conns := floodWith(t, addr, sourceAddrs(2, 100), 4, dimse.MaxAssociateLength, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	waitDrained(t, port)
	peak := vmHWM(t, child)
	run(t, echoscu, tlsArgs...)
	closeAll(conns)
	t.Logf("receiver peak RSS over TLS: %d KiB at rest, %d KiB after 100 addresses × 4 handshakes and %d-byte requests (%d connections held by the client)",
		base, peak, dimse.MaxAssociateLength, len(conns))
	bound := int64(24 << 10)
	if raceDetector {
		bound *= 3
	}
	if peak-base > bound {
		t.Errorf("peak RSS grew by %d KiB under the TLS flood, bound %d KiB", peak-base, bound)
	}
}

// startChildSCP runs this test binary as the box's receiver (runChildSCP) and returns
// its pid, its log and its port.
func startChildSCP(t *testing.T) (int, *proclog.Buffer, string) {
	t.Helper()
	return startChildSCPIn(t, t.TempDir())
}

// startChildSCPIn is startChildSCP with its state in state (see runChildSCP).
func startChildSCPIn(t *testing.T, state string) (int, *proclog.Buffer, string) {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+state)
	stderr := &proclog.Buffer{}
	child.Stderr = stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
		if t.Failed() {
			t.Logf("receiver log:\n%s", stderr.String())
		}
	})
	return child.Process.Pid, stderr, waitPortFile(t, filepath.Join(state, "port"))
}

// sourceAddrs returns n loopback addresses from 127.0.0.first: Linux routes all of
// 127/8 to lo, so a test can be many hosts.
func sourceAddrs(first, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("127.0.%d.%d", (first+i)/250, 1+(first+i)%250))
	}
	return out
}

// flood opens perAddr connections from each source address and sends on each the
// header of an A-ASSOCIATE-RQ of length bytes and all of its body but the last byte.
// Connections the receiver refuses are closed at once; the others are returned.
func flood(t *testing.T, addr string, sources []string, perAddr int, length int) []net.Conn {
	t.Helper()
	return floodWith(t, addr, sources, perAddr, length, nil)
}

// floodWith is flood over TLS when tlsConf is not nil: each connection completes its
// handshake before it sends the unfinished request.
func floodWith(t *testing.T, addr string, sources []string, perAddr int, length int, tlsConf *tls.Config) []net.Conn {
	t.Helper()
	msg := make([]byte, 6+length-1)
	msg[0] = 0x01
	binary.BigEndian.PutUint32(msg[2:], uint32(length))
	var mu sync.Mutex
	var held []net.Conn
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, src := range sources {
		for i := 0; i < perAddr; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					return
				}
				if tlsConf != nil {
					tc := tls.Client(c, tlsConf)
					tc.SetDeadline(time.Now().Add(10 * time.Second))
					if tc.Handshake() != nil {
						c.Close()
						return
					}
					c = tc
				}
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(msg); err != nil {
					c.Close()
					return
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return held
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// waitDrained waits until the receiver has read every byte sent to port, so that
// whatever it holds in memory for the flood is in its RSS when it is measured.
func waitDrained(t *testing.T, port string) {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf(":%04X", p)
	var unread int64
	wait.For(t, 30*time.Second, "the receiver to read everything sent to it", func() bool {
		f, err := os.Open("/proc/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		unread = 0
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 5 || !strings.HasSuffix(fields[1], local) {
				continue
			}
			_, rx, _ := strings.Cut(fields[4], ":")
			n, _ := strconv.ParseInt(rx, 16, 64)
			unread += n
		}
		return unread == 0
	})
}

// resetHWM starts a new peak for vmHWM (Linux 4.0 and later).
func resetHWM(t *testing.T, pid int) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak RSS of %d: %v", pid, err)
	}
}

// vmHWM returns the peak resident set size of process pid in KiB.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM of %d: %q: %v", pid, v, err)
			}
			return n
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
