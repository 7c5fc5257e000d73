package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/internal/audit/audittest"
	"lifeline/internal/wait"
)

// enrolBox enrols deviceID with h into a new directory and returns the directory.
func enrolBox(t *testing.T, h *testHub, deviceID string) string {
	t.Helper()
	code, err := h.reg.NewCode(context.Background(), deviceID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Enroll(context.Background(), h.url, code, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// whoamiWith asks h's device-only endpoint presenting exactly cert, as a box that never
// renewed would.
func whoamiWith(t *testing.T, h *testHub, cert tls.Certificate) int {
	t.Helper()
	conf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: h.auth.Pool()}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
	resp, err := client.Get(h.url + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRenewKeepsDeviceAndSupersedesOldCertificate renews a box over its identity: the
// new certificate is for the same device and a new key, the box's connections present
// it, the hub records it as current and audits the renewal, and the old certificate is
// refused from then on.
func TestRenewKeepsDeviceAndSupersedesOldCertificate(t *testing.T) {
	h := startHub(t)
	dir := enrolBox(t, h, "AMB-0101")
	before, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	after, err := Renew(context.Background(), h.url, dir)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	if after.DeviceID != "AMB-0101" || after.Leaf.SerialNumber.Cmp(before.Leaf.SerialNumber) == 0 {
		t.Fatalf("renewed identity: device %s serial %s (was %s)", after.DeviceID, after.Leaf.SerialNumber, before.Leaf.SerialNumber)
	}
	if keyMatches(after.Leaf, before.Cert.PrivateKey.(crypto.Signer)) {
		t.Fatal("renewed certificate is for the old key")
	}
	if RenewalPending(dir) {
		t.Fatal("renew.key left behind after a finished renewal")
	}
	// The identity loaded before the renewal presents the new certificate too: parts
	// built at start keep working.
	if status, body := whoami(t, h, before); status != 200 || body != "AMB-0101" {
		t.Fatalf("box after renewal: %d %q", status, body)
	}
	if status := whoamiWith(t, h, before.Cert); status != http.StatusForbidden {
		t.Fatalf("old certificate after renewal: %d, want 403", status)
	}
	if !strings.Contains(h.audit.Last("device.refused")["reason"].(string), "replaced") {
		t.Fatalf("refusal of the old certificate: %v", h.audit.Last("device.refused"))
	}
	got := h.audit.Last("renew.accepted")
	if got == nil || got["old_serial"] != before.Leaf.SerialNumber.Text(16) || got["serial"] != after.Leaf.SerialNumber.Text(16) {
		t.Fatalf("renewal audit line: %v", got)
	}
	d, err := h.reg.state.Device(context.Background(), "AMB-0101")
	if err != nil || d.Serial != after.Leaf.SerialNumber.Text(16) || !d.NotAfter.Equal(after.Leaf.NotAfter) {
		t.Fatalf("registry after renewal: %+v %v", d, err)
	}
	// A renewal over the superseded certificate gets nothing new.
	if _, err := requestRenewal(context.Background(), h.url, &Identity{DeviceID: "AMB-0101", Cert: before.Cert, Leaf: before.Leaf, HubCA: before.HubCA}, mustKey(t)); !errors.Is(err, ErrRenewalRefused) {
		t.Fatalf("renewal over the old certificate: %v", err)
	}
}

// TestRenewRefusedForRevokedDevice checks that a revoked box cannot renew, and that
// its identity on disk is left as it was.
func TestRenewRefusedForRevokedDevice(t *testing.T) {
	h := startHub(t)
	dir := enrolBox(t, h, "AMB-0102")
	before, _ := LoadIdentity(dir)
	if err := h.reg.Revoke(context.Background(), "AMB-0102"); err != nil {
		t.Fatal(err)
	}
	if _, err := Renew(context.Background(), h.url, dir); !errors.Is(err, ErrRenewalRefused) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("renewal of a revoked box: %v", err)
	}
	if h.audit.Count("renew.accepted") != 0 || !strings.Contains(h.audit.Last("renew.refused")["reason"].(string), "revoked") {
		t.Fatalf("audit events: %v", h.audit.Events())
	}
	now, err := LoadIdentity(dir)
	if err != nil || now.Leaf.SerialNumber.Cmp(before.Leaf.SerialNumber) != 0 {
		t.Fatalf("identity after a refused renewal: %v", err)
	}
}

// TestRenewFailsClosedWithoutAudit checks that a renewal whose audit line cannot be
// made durable does not happen, and that the box renews once it can.
func TestRenewFailsClosedWithoutAudit(t *testing.T) {
	h := startHub(t)
	dir := enrolBox(t, h, "AMB-0103")
	before, _ := LoadIdentity(dir)
	h.audit.FailWith(errors.New("disk full"))
	if _, err := Renew(context.Background(), h.url, dir); err == nil || !strings.Contains(err.Error(), "not audited") {
		t.Fatalf("renewal with a failing audit log: %v", err)
	}
	h.audit.FailWith(nil)
	if status := whoamiWith(t, h, before.Cert); status != 200 {
		t.Fatalf("old certificate after an unaudited renewal: %d", status)
	}
	if !RenewalPending(dir) {
		t.Fatal("the new key was not kept for the next try")
	}
	if _, err := Renew(context.Background(), h.url, dir); err != nil {
		t.Fatalf("renewal once the audit log works: %v", err)
	}
	if h.audit.Count("renew.accepted") != 1 {
		t.Fatalf("audit events: %v", h.audit.Events())
	}
}

// TestRenewRepeatedAfterLostAnswer plays a box that lost the hub's answer: the hub has
// replaced the old certificate, so only asking again with the same new key helps, and
// gets the same certificate back.
func TestRenewRepeatedAfterLostAnswer(t *testing.T) {
	h := startHub(t)
	dir := enrolBox(t, h, "AMB-0104")
	id, _ := LoadIdentity(dir)
	key, err := pendingRenewalKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	lost, err := requestRenewal(context.Background(), h.url, id, key)
	if err != nil {
		t.Fatal(err)
	}
	if status := whoamiWith(t, h, id.Cert); status != http.StatusForbidden {
		t.Fatalf("old certificate once the hub renewed: %d", status)
	}
	again, err := Renew(context.Background(), h.url, dir)
	if err != nil {
		t.Fatalf("repeated renewal: %v", err)
	}
	if again.Leaf.SerialNumber.Cmp(lost.SerialNumber) != 0 {
		t.Fatalf("repeated renewal issued %s, want the lost %s", again.Leaf.SerialNumber, lost.SerialNumber)
	}
	if status, _ := whoami(t, h, again); status != 200 || h.audit.Count("renew.repeated") != 1 || h.audit.Count("renew.accepted") != 1 {
		t.Fatalf("after the repeat: %d, audit %v", status, h.audit.Events())
	}
}

// blockingAuditor holds every renewal's audit line until released, so that a test can
// send a second renewal while the first is in progress.
type blockingAuditor struct {
	audittest.Recorder
	entered chan struct{}
	release chan struct{}
}

func (b *blockingAuditor) Record(event string, fields map[string]any) error {
	if event == "renew.accepted" {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.Recorder.Record(event, fields)
}

// TestRenewBoundedOnePerDevice checks that a renewal body is bounded and that a
// device's second renewal is refused while its first runs.
func TestRenewBoundedOnePerDevice(t *testing.T) {
	h := startHub(t)
	dir := enrolBox(t, h, "AMB-0105")
	id, _ := LoadIdentity(dir)

	blocking := &blockingAuditor{entered: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewUnstartedServer(RenewHandler(h.auth, h.reg, blocking))
	var err error
	if srv.TLS, err = h.auth.ServerTLS([]string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: id.ClientTLS()}}
	big, _ := json.Marshal(renewRequest{CSR: strings.Repeat("A", 2*maxRenewBody)})
	resp, err := client.Post(srv.URL+RenewPath, "application/json", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("oversized renewal: %s", resp.Status)
	}

	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() {
		_, firstErr = requestRenewal(context.Background(), srv.URL, id, mustKey(t))
	})
	<-blocking.entered
	if _, err := requestRenewal(context.Background(), srv.URL, id, mustKey(t)); err == nil || !strings.Contains(err.Error(), "already in progress") {
		t.Fatalf("second renewal while the first runs: %v", err)
	}
	close(blocking.release)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("first renewal: %v", firstErr)
	}
}

// TestLoadIdentityAfterPowerCutMidRenewal builds each state a power cut can leave on
// the box's disk and checks that the box then has a working identity: the old one
// before the new certificate is stored, the new one after.
func TestLoadIdentityAfterPowerCutMidRenewal(t *testing.T) {
	h := startHub(t)
	for _, tc := range []struct {
		name    string
		cut     func(t *testing.T, dir string) // leaves the disk as a power cut would
		renewed bool
	}{
		{"new key stored, no answer yet", func(t *testing.T, dir string) {}, false},
		{"new certificate stored", func(t *testing.T, dir string) {}, true},
		{"key renamed, certificate not yet", func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, renewKey), filepath.Join(dir, identityKey)); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := enrolBox(t, h, "AMB-0106")
			id, _ := LoadIdentity(dir)
			key, err := pendingRenewalKey(dir)
			if err != nil {
				t.Fatal(err)
			}
			if tc.renewed {
				leaf, err := requestRenewal(context.Background(), h.url, id, key)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, renewCert), encodeCert(leaf.Raw), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			tc.cut(t, dir)
			loaded, err := LoadIdentity(dir)
			if err != nil {
				t.Fatalf("identity after the cut: %v", err)
			}
			if status, _ := whoami(t, h, loaded); status != 200 {
				t.Fatalf("box after the cut: %d", status)
			}
			if renewed := loaded.Leaf.SerialNumber.Cmp(id.Leaf.SerialNumber) != 0; renewed != tc.renewed {
				t.Fatalf("renewed = %v, want %v", renewed, tc.renewed)
			}
		})
	}
}

// TestHubCertificateRollsWhileServing runs a hub whose server certificate lives three
// seconds: Renew replaces it before it runs out, on disk first, and new connections
// get it without a restart while the box's old connection keeps working.
func TestHubCertificateRollsWhileServing(t *testing.T) {
	dir := t.TempDir()
	auth, err := OpenAuthority(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	auth.SetLifetimes(Lifetimes{Server: 3 * time.Second})
	conf, hubCert, err := auth.RollingServerTLS([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	// Not httptest's TLS server: it puts its own certificate into a configuration
	// without one, and TLS would then never ask GetCertificate.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), TLSConfig: conf}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String()

	served := func(tr *http.Transport) string {
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Text(16)
	}
	client := func() *http.Transport {
		return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: auth.Pool(), ServerName: "127.0.0.1"}}
	}
	kept := client()
	first := served(kept)
	if renewed, err := hubCert.Renew(time.Now()); err != nil || renewed {
		t.Fatalf("renewal of a fresh certificate: %v %v", renewed, err)
	}
	wait.For(t, 5*time.Second, "the server certificate to be due", func() bool { return DueForRenewal(hubCert.Leaf(), time.Now()) })
	if renewed, err := hubCert.Renew(time.Now()); err != nil || !renewed {
		t.Fatalf("renewal of a due certificate: %v %v", renewed, err)
	}
	second := served(client())
	if second == first {
		t.Fatal("a new connection still gets the old server certificate")
	}
	if served(kept) != first {
		t.Fatal("the connection made before the renewal changed certificate")
	}
	disk, err := readCert(serverCertPath(auth.dir))
	key, kerr := readKey(filepath.Join(auth.dir, "server.key"))
	if err != nil || kerr != nil || disk.SerialNumber.Text(16) != second || !keyMatches(disk, key) {
		t.Fatalf("server certificate on disk: %v %v", err, kerr)
	}
	// A hub that starts now presents the renewed certificate, not a third one.
	again, err := auth.HubCertificate([]string{"127.0.0.1"})
	if err != nil || again.Leaf().SerialNumber.Text(16) != second {
		t.Fatalf("certificate after a restart: %v", err)
	}
}

// TestServerCertificateReissuedWhenKeyDoesNotMatch plays a power cut between writing a
// new server key and its certificate: the hub issues again instead of presenting a
// certificate it has no key for.
func TestServerCertificateReissuedWhenKeyDoesNotMatch(t *testing.T) {
	auth, err := OpenAuthority(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.ServerCertificate([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeKey(filepath.Join(auth.dir, "server.key"), mustKey(t)); err != nil {
		t.Fatal(err)
	}
	b, err := auth.ServerCertificate([]string{"127.0.0.1"})
	if err != nil || b.Leaf.SerialNumber.Cmp(a.Leaf.SerialNumber) == 0 {
		t.Fatalf("certificate with a foreign key reused: %v", err)
	}
}

// TestRenewalTiming pins the schedule for real lifetimes: a three-year certificate is
// due with a year left, looked at hourly, and a failing renewal is retried after a
// minute, doubling up to six hours.
func TestRenewalTiming(t *testing.T) {
	now := time.Now()
	cert := &x509.Certificate{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(3*365*24*time.Hour - time.Hour)}
	if DueForRenewal(cert, now) || DueForRenewal(cert, now.Add(2*365*24*time.Hour-2*time.Hour)) || !DueForRenewal(cert, now.Add(2*365*24*time.Hour+time.Hour)) {
		t.Fatal("a three-year certificate is due once less than a year is left, not before")
	}
	if RenewalCheck(cert) != time.Hour {
		t.Fatalf("check interval %s", RenewalCheck(cert))
	}
	if RenewalBackoff(cert, 1) != time.Minute || RenewalBackoff(cert, 2) != 2*time.Minute || RenewalBackoff(cert, 30) != 6*time.Hour {
		t.Fatalf("back-off %s, %s .. %s", RenewalBackoff(cert, 1), RenewalBackoff(cert, 2), RenewalBackoff(cert, 30))
	}
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestConnectionsMadeBeforeRenewalKeepWorking checks, over HTTP/1.1 and HTTP/2, that a
// connection the box made before its renewal is still served (its uploads are not cut),
// while a new connection with the old certificate is refused as replaced; and that a
// revocation refuses the old connection too and closes it, so that the box's next
// request comes on a new connection.
func TestConnectionsMadeBeforeRenewalKeepWorking(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			h := startHub(t)
			dir := enrolBox(t, h, "AMB-0107")
			id, _ := LoadIdentity(dir)
			// startHub's server speaks HTTP/1.1 only; this one may speak HTTP/2.
			srv := httptest.NewUnstartedServer(RequireDevice(h.reg, h.audit, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
			srv.EnableHTTP2 = h2
			var err error
			if srv.TLS, err = h.auth.ServerTLS([]string{"127.0.0.1"}); err != nil {
				t.Fatal(err)
			}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			kept := &http.Client{Transport: &http.Transport{TLSClientConfig: id.ClientTLS(), ForceAttemptHTTP2: h2}}
			// get answers the status and whether the request went over a connection made
			// before.
			get := func(c *http.Client) (int, bool) {
				var reused bool
				trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, srv.URL+"/whoami", nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if h2 != (resp.ProtoMajor == 2) {
					t.Fatalf("answered over %s", resp.Proto)
				}
				return resp.StatusCode, reused
			}
			if status, _ := get(kept); status != 200 {
				t.Fatalf("before renewal: %d", status)
			}
			if _, err := Renew(context.Background(), h.url, dir); err != nil {
				t.Fatal(err)
			}
			if status, reused := get(kept); status != 200 || !reused {
				t.Fatalf("connection made before the renewal: %d (reused %v), want it served", status, reused)
			}
			if status := whoamiWith(t, h, id.Cert); status != http.StatusForbidden {
				t.Fatalf("new connection with the replaced certificate: %d", status)
			}
			if err := h.reg.Revoke(context.Background(), "AMB-0107"); err != nil {
				t.Fatal(err)
			}
			if status, reused := get(kept); status != http.StatusForbidden || !reused {
				t.Fatalf("connection made before the renewal, once revoked: %d (reused %v)", status, reused)
			}
			if _, reused := get(kept); reused {
				t.Fatal("the refused connection was not closed")
			}
		})
	}
}
