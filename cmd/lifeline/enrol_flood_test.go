package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// TestEnrolmentFloodAgainstTheHub reproduces issue 16 item 4 against `lifeline hub`:
// 1000 wrong enrolment codes from one address, as fast as one client sends them, and
// a request body trickled a byte at a time. The flood is refused (403) until the
// address must wait, and then answered 429; another address is not held back; the
// audit log gains a few lines for the whole flood instead of one fsynced line per
// code; the trickled request is cut at the enrolment read timeout (10 s).
func TestEnrolmentFloodAgainstTheHub(t *testing.T) {
	hub, hubAddr, hubStatus, _, auditPath := startFloodedHub(t)
	before := fileSize(t, auditPath)

	flood := httpsFrom("127.0.0.1")
	answers := map[int]int{}
	body := wrongCodeRequest(t)
	began := time.Now()
	for range 1000 {
		answers[enrolPost(t, flood, hubAddr, body)]++
	}
	t.Logf("1000 wrong codes in %v: %v", time.Since(began).Round(time.Millisecond), answers)
	if answers[http.StatusTooManyRequests] < 980 || answers[http.StatusForbidden] == 0 || answers[http.StatusForbidden] > 20 {
		t.Errorf("answers %v; want a few refusals, then 429", answers)
	}
	if st := enrolPost(t, httpsFrom("127.0.0.2"), hubAddr, body); st == http.StatusTooManyRequests {
		t.Errorf("another address was throttled by the first one's flood")
	}

	// How many are refused before the address must wait depends on how fast this
	// machine sends them (the allowance refills with time); the metric must count
	// exactly the 429s the flood saw.
	throttled := fmt.Sprintf(`lifeline_hub_enrol_requests_total{code="429"} %d`, answers[http.StatusTooManyRequests])
	if metrics := fetchText(t, "http://"+hubStatus+"/metrics"); !strings.Contains(metrics, throttled+"\n") {
		t.Errorf("/metrics does not count the %d throttled enrolments (want %q):\n%s", answers[http.StatusTooManyRequests], throttled, metrics)
	}

	took, answer := trickleEnrolment(t, hubAddr, "127.0.0.3")
	t.Logf("trickled enrolment body cut after %v: %q", took.Round(100*time.Millisecond), firstLine(answer))
	if took > 15*time.Second || !bytes.Contains(answer, []byte(" 400 ")) {
		t.Errorf("a trickled body held its connection %v and got %q; want 400 and the connection cut at 10 s", took, firstLine(answer))
	}

	hub.stop(t) // writes the summaries that are still open
	log, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	flooded := log[before:]
	lines := bytes.Count(flooded, []byte("\n"))
	t.Logf("audit log grew by %d bytes in %d lines for the flood:\n%s", len(flooded), lines, flooded)
	if lines > 8 || !bytes.Contains(flooded, []byte(`"enrol.refused"`)) || !bytes.Contains(flooded, []byte(`"repeated":`)) {
		t.Errorf("the flood left %d audit lines (%d bytes); want the first of each kind and their summaries", lines, len(flooded))
	}
}

// httpsFrom is an HTTPS client whose connections come from the loopback address ip;
// it trusts any certificate, being a stranger that only wants to be a nuisance.
func httpsFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
}

func enrolPost(t *testing.T, c *http.Client, hubAddr, body string) int {
	t.Helper()
	resp, err := c.Post("https://"+hubAddr+"/api/v1/enroll", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// trickleEnrolment sends an enrolment request from the loopback address from whose
// body comes a byte every half second, and returns how long the hub kept the
// connection and what it answered.
func trickleEnrolment(t *testing.T, hubAddr, from string) (time.Duration, []byte) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := tls.DialWithDialer(d, "tcp", hubAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /api/v1/enroll HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	closed := make(chan []byte)
	go func() {
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		b, _ := io.ReadAll(c)
		closed <- b
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case b := <-closed:
			return time.Since(began), b
		case <-tick.C:
			c.Write([]byte(" "))
		}
	}
}

// wrongCodeRequest is an enrolment request as a box makes it, with a real certificate
// request and a code the hub never issued, so that the hub looks the code up.
func wrongCodeRequest(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "lifeline-box"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"code": "AAAAAAAAAAAAAAAA", "csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	return string(body)
}

// fetchText GETs url and returns its body, empty on an error.
func fetchText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return strings.TrimSpace(string(b[:i]))
	}
	return string(b)
}

// TestSignInFloodAgainstTheHub checks the other endpoint a stranger reaches without a
// credential, sign-in on the viewer port, against the same flood: internal/signin
// throttles per address (20 failures, then a doubling wait) and answers a blocked
// address 429 before hashing, so 1000 wrong passwords leave a few dozen audit lines.
func TestSignInFloodAgainstTheHub(t *testing.T) {
	hub, _, _, viewer, auditPath := startFloodedHub(t)
	before := fileSize(t, auditPath)
	client := httpsFrom("127.0.0.1")
	answers := map[int]int{}
	began := time.Now()
	for i := range 1000 {
		req, _ := http.NewRequest("POST", "https://"+viewer+"/api/v1/signin", strings.NewReader(fmt.Sprintf(`{"user":"dr.li","password":"guess %d"}`, i)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "https://"+viewer)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answers[resp.StatusCode]++
	}
	hub.stop(t)
	grown := fileSize(t, auditPath) - before
	t.Logf("1000 wrong passwords in %v: %v; the audit log grew by %d bytes", time.Since(began).Round(time.Millisecond), answers, grown)
	if answers[http.StatusTooManyRequests] < 970 {
		t.Errorf("answers %v; want all but a few throttled", answers)
	}
	if grown > 10<<10 {
		t.Errorf("the audit log grew by %d bytes for 1000 wrong passwords", grown)
	}
}

// startFloodedHub runs a hub alone on ports of its own until it is ready, for a flood
// test, and returns it with its port for boxes, its status and viewer ports and its
// audit log.
func startFloodedHub(t *testing.T) (hub *proc, hubAddr, hubStatus, viewer, auditPath string) {
	t.Helper()
	dir := t.TempDir()
	hubAddr, hubStatus, viewer = freePort(t), freePort(t), freePort(t)
	stream := freePort(t)
	hubConf := writeFile(t, dir, "hub.toml", fmt.Sprintf("[server]\nlisten = %q\n[status]\nlisten = %q\n[viewer]\nlisten = %q\n[stream]\nlisten = %q\n", hubAddr, hubStatus, viewer, stream))
	hubData := filepath.Join(dir, "hub")
	hub = start(t, "hub", "--config", hubConf, "--data", hubData)
	wait.For(t, 20*time.Second, "hub ready", func() bool {
		var hs statusBody
		return getJSON(t, "http://"+hubStatus+"/api/v1/status", &hs) == 200 && hs.Overall == "ready"
	})
	return hub, hubAddr, hubStatus, viewer, filepath.Join(hubData, "audit.log")
}
