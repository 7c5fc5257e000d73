package trust

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/internal/audit"
	"lifeline/internal/audit/audittest"
	"lifeline/internal/hubstate/boltstate"
)

// limitedHub is an enrolment endpoint behind its limits on a real TLS listener.
type limitedHub struct {
	auth    *Authority
	reg     *Registry
	rec     *audittest.Recorder
	repeats *audit.Repeats
	url     string
}

func startLimitedHub(t testing.TB, readTimeout time.Duration) *limitedHub {
	t.Helper()
	dir := t.TempDir()
	auth, err := OpenAuthority(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := boltstate.Open(filepath.Join(dir, "hub.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := &limitedHub{auth: auth, reg: NewRegistry(store, auth), rec: &audittest.Recorder{}}
	h.repeats = audit.NewRepeats(h.rec, audit.RepeatsConfig{Every: time.Hour})
	srv := httptest.NewUnstartedServer(LimitedEnrollHandler(auth, h.reg, h.rec, EnrollLimits{Repeats: h.repeats, ReadTimeout: readTimeout}))
	srv.TLS, err = auth.ServerTLS([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// clientFrom is an HTTPS client whose connections come from the loopback address ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test checks limits, not the pin
	}}
}

// csrPEM is a box's certificate request.
func csrPEM(t testing.TB) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "lifeline-box"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func postEnrol(t *testing.T, c *http.Client, url, code, csr string) int {
	t.Helper()
	body, _ := json.Marshal(enrollRequest{Code: code, CSR: csr})
	resp, err := c.Post(url+EnrollPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestEnrolmentFloodThrottledPerAddress: wrong codes from one address are refused
// (403) until the eleventh, which starts the wait; then they are answered 429 without
// being looked at; the whole flood leaves
// one refusal and one throttling line, the rest waiting for their summary. Another
// address is neither throttled nor hurt: its right code enrols, recorded at once.
func TestEnrolmentFloodThrottledPerAddress(t *testing.T) {
	h := startLimitedHub(t, 0)
	csr := csrPEM(t)
	flood := clientFrom("127.0.0.1")
	counts := map[int]int{}
	for range 300 {
		counts[postEnrol(t, flood, h.url, "AAAAAAAAAAAAAAAA", csr)]++
	}
	if counts[http.StatusForbidden] != 11 || counts[http.StatusTooManyRequests] != 289 {
		t.Fatalf("answers %v; want 11 refusals, then 429", counts)
	}
	if n, m := h.rec.Count("enrol.refused"), h.rec.Count("enrol.throttled"); n != 1 || m != 1 {
		t.Fatalf("%d refusal and %d throttling lines during the flood; want one of each", n, m)
	}

	code, err := h.reg.NewCode(context.Background(), "AMB-0009", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, _ := ParseCode(code)
	other := clientFrom("127.0.0.2")
	if st := postEnrol(t, other, h.url, "BBBBBBBBBBBBBBBB", csr); st != http.StatusForbidden {
		t.Fatalf("another address's first wrong code: %d, want 403", st)
	}
	if st := postEnrol(t, other, h.url, secret, csr); st != http.StatusOK {
		t.Fatalf("another address's right code: %d, want 200", st)
	}
	if h.rec.Count("enrol.accepted") != 1 {
		t.Fatal("the accepted enrolment was not recorded at once")
	}
	h.repeats.Flush(true)
	if last := h.rec.Last("enrol.throttled"); last["repeated"] != 288 {
		t.Fatalf("throttling summary %v; want 288 repeats", last)
	}
	if last := h.rec.Last("enrol.refused"); last["repeated"] != 10 {
		t.Fatalf("refusal summary %v; want 10 repeats", last)
	}
}

// TestTrickledEnrolmentBodyIsCut: a request whose body trickles in (the attack sent 5
// bytes every 75 s) is answered 400 and loses its connection at the read timeout.
func TestTrickledEnrolmentBodyIsCut(t *testing.T) {
	h := startLimitedHub(t, 500*time.Millisecond)
	c, err := tls.Dial("tcp", strings.TrimPrefix(h.url, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST "+EnrollPath+" HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{\"co"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	closed := make(chan []byte)
	go func() {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, _ := io.ReadAll(c)
		closed <- b
	}()
	trickle := time.NewTicker(100 * time.Millisecond)
	defer trickle.Stop()
	var answer []byte
loop:
	for {
		select {
		case answer = <-closed:
			break loop
		case <-trickle.C:
			c.Write([]byte("d")) // slower than any box, faster than nothing
		}
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("a trickled body held its connection %v", took)
	}
	if !strings.Contains(string(answer), "400") {
		t.Errorf("answer %q; want 400 for the unfinished body", answer)
	}
}
