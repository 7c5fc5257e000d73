package appliance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"lifeline/internal/service"
	"lifeline/internal/trust"
	"lifeline/internal/wait"
)

// hospitalPKI is a hospital's certificate authority, made in the test, as the
// hospital's IT would issue the hub's browser certificate from it.
type hospitalPKI struct {
	ca    *x509.Certificate
	key   *ecdsa.PrivateKey
	roots *x509.CertPool
}

func newHospitalPKI(t *testing.T) *hospitalPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Hospital Root CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &hospitalPKI{ca: ca, key: key, roots: roots}
}

// issue writes a server certificate for 127.0.0.1 and localhost with the given serial
// to certFile and its key to keyFile, and returns the certificate.
func (p *hospitalPKI) issue(t *testing.T, serial int64, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "ed.hospital.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	if keyFile != "" {
		writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// viewerSerial connects to the viewer as a browser that trusts only the hospital's
// authority would, and returns the serial of the certificate it was shown.
func viewerSerial(t *testing.T, addr string, roots *x509.CertPool) (int64, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestViewerServesHospitalCertificateWhileBoxesPinTheHub checks item 9 of issue 13:
// a browser trusting only the hospital's authority accepts the viewer, a box still
// enrols and connects with mutual TLS under the hub's own authority, and a renewed
// certificate reaches browsers without a restart, while a broken renewal is refused
// and reported.
func TestViewerServesHospitalCertificateWhileBoxesPinTheHub(t *testing.T) {
	pki := newHospitalPKI(t)
	files := t.TempDir()
	certFile, keyFile := filepath.Join(files, "ed.crt"), filepath.Join(files, "ed.key")
	pki.issue(t, 100, certFile, keyFile)
	hub, cfg, dir := startHub(t, func(c *HubConfig) { c.Server.CertFile, c.Server.KeyFile = certFile, keyFile })

	// A browser that knows only the hospital's root: the viewer is trusted …
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.roots}}}
	resp, err := client.Get("https://localhost:" + port(cfg.Viewer.Listen) + "/api/v1/whoami")
	if err != nil {
		t.Fatalf("a browser trusting the hospital's root: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("whoami without a session: %d %v, want 401 with HSTS", resp.StatusCode, resp.Header)
	}
	// … and the boxes' port is not (boxes pin the hub's own authority there).
	if _, err := client.Get("https://localhost:" + port(cfg.Server.Listen) + "/api/v1/hello"); err == nil {
		t.Fatal("the boxes' port presented a certificate of the hospital's")
	}

	// A box enrols and connects with mutual TLS, pinning the hub's authority.
	admin := HubAdmin{DataDir: filepath.Join(dir, "hub"), Lifetime: time.Hour, Log: quietLog()}
	code, err := admin.Enrol("AMB-0010")
	if err != nil {
		t.Fatal(err)
	}
	id, err := trust.Enroll(context.Background(), "https://"+cfg.Server.Listen, code.Code, filepath.Join(dir, "box"))
	if err != nil {
		t.Fatalf("box enrolment with a hospital certificate configured: %v", err)
	}
	h3 := &http.Client{Transport: &http3.Transport{TLSClientConfig: id.ClientTLS()}, Timeout: 5 * time.Second}
	resp, err = h3.Get("https://" + cfg.Server.Listen + "/api/v1/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("enrolled box over HTTP/3: %d", resp.StatusCode)
	}

	// Renewal: new files are served within seconds, without a restart.
	pki.issue(t, 101, certFile, keyFile)
	wait.For(t, 10*time.Second, "the renewed certificate served", func() bool {
		serial, err := viewerSerial(t, cfg.Viewer.Listen, pki.roots)
		return err == nil && serial == 101
	})
	// A certificate written without its key does not load: the last good one stays,
	// and the status says so.
	pki.issue(t, 102, certFile, "")
	wait.For(t, 10*time.Second, "a broken renewal reported", func() bool {
		return serviceState(hub.Status(), "viewer-https") == service.Degraded
	})
	if serial, err := viewerSerial(t, cfg.Viewer.Listen, pki.roots); err != nil || serial != 101 {
		t.Fatalf("after a broken renewal browsers get serial %d (%v), want the last good 101", serial, err)
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestBrowserCertificateConfigErrors checks that a wrong certificate setting stops the
// hub at start with the file and key named, as every configuration error does.
func TestBrowserCertificateConfigErrors(t *testing.T) {
	pki := newHospitalPKI(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ed.crt"), filepath.Join(dir, "ed.key")
	pki.issue(t, 7, certFile, keyFile)
	otherCert := filepath.Join(dir, "other.crt")
	pki.issue(t, 8, otherCert, filepath.Join(dir, "other.key"))
	for _, c := range []struct {
		body    string
		key     string
		mention string
	}{
		{"[server]\ncert_file = \"" + certFile + "\"\n", "server.key_file", "set the private key"},
		{"[server]\nkey_file = \"" + keyFile + "\"\n", "server.cert_file", "set the certificate"},
		{"[server]\ncert_file = \"" + dir + "/missing.crt\"\nkey_file = \"" + keyFile + "\"\n", "server.cert_file", "missing.crt"},
		{"[server]\ncert_file = \"" + otherCert + "\"\nkey_file = \"" + keyFile + "\"\n", "server.cert_file", "does not match"},
		{"[viewer]\nidle_timeout = \"13h\"\n", "viewer.idle_timeout", "longer than viewer.session_lifetime"},
	} {
		path := writeConfig(t, c.body)
		_, err := LoadHubConfig(path)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), path) {
			t.Errorf("config %q: %v, want key %s mentioning %q", c.body, err, c.key, c.mention)
		}
	}
	if _, err := LoadHubConfig(writeConfig(t, "[server]\ncert_file = \""+certFile+"\"\nkey_file = \""+keyFile+"\"\n")); err != nil {
		t.Fatalf("a good pair: %v", err)
	}
}

func TestViewerListensBesideTheBoxesByDefault(t *testing.T) {
	for server, want := range map[string]string{"127.0.0.1:8443": "127.0.0.1:8444", "0.0.0.0:9000": "0.0.0.0:9001", "127.0.0.1:0": "127.0.0.1:0"} {
		cfg := DefaultHubConfig()
		cfg.Server.Listen = server
		if got := cfg.ViewerListen(); got != want {
			t.Errorf("server.listen %s: viewer on %s, want %s", server, got, want)
		}
	}
	cfg := DefaultHubConfig()
	if cfg.ViewerURL() != "https://127.0.0.1:8444" {
		t.Errorf("default viewer URL %s", cfg.ViewerURL())
	}
	if _, err := LoadHubConfig(writeConfig(t, "[server]\nlisten = \"127.0.0.1:65535\"\n")); err == nil || !strings.Contains(err.Error(), "viewer.listen") {
		t.Errorf("server on 65535 without viewer.listen: %v", err)
	}
}
