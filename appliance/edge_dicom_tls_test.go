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
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"lifeline/dicom/phantom"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestDICOMTLSVerifyingModalityAcceptsTheBox runs a box with DICOM TLS (not enrolled:
// the DICOM port does not need the hub) and has DCMTK's echoscu and storescu, told to
// require and verify the peer's certificate against the box's DICOM authority, talk to
// it. The certificate is for serving (serverAuth) and names the listening address;
// a modality given another authority refuses the box, and a box presenting a
// client-only certificate, as before, is refused by the same verifying storescu.
func TestDICOMTLSVerifyingModalityAcceptsTheBox(t *testing.T) {
	p := peers.Need(t, "echoscu", "storescu")
	echoscu, storescu := p[0], p[1]
	cfg := DefaultEdgeConfig()
	cfg.HTTP.Listen, cfg.DICOM.Listen, cfg.DICOM.TLS, cfg.Stream.Enabled = "127.0.0.1:0", "127.0.0.1:0", true, false
	data := t.TempDir()
	e, err := OpenEdge(cfg, data, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("box: %v", err)
		}
	})
	scp, _ := e.receiver.get()
	wait.For(t, 10*time.Second, "the DICOM TLS receiver to listen", func() bool { return scp.Status().Listen != "" })
	_, port, _ := net.SplitHostPort(scp.Status().Listen)
	caFile := filepath.Join(dicomTLSDir(data), "dicom-ca.crt")

	// What a modality installs: the authority, as the box serves it.
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8780"+DICOMCAPath, nil))
	onDisk, _ := os.ReadFile(caFile)
	if rec.Code != http.StatusOK || len(onDisk) == 0 || rec.Body.String() != string(onDisk) {
		t.Fatalf("GET %s: %d, %d bytes; the file has %d", DICOMCAPath, rec.Code, rec.Body.Len(), len(onDisk))
	}
	ca := parsePEMCert(t, onDisk)

	// Go's verifier, strictly: chain, serverAuth and the dialled address.
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("verifying TLS handshake with the box: %v", err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	host, _ := os.Hostname()
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || leaf.VerifyHostname("localhost") != nil ||
		(host != "" && leaf.VerifyHostname(host) != nil) {
		t.Errorf("server certificate: EKU %v, DNS %v, IP %v", leaf.ExtKeyUsage, leaf.DNSNames, leaf.IPAddresses)
	}

	// DCMTK requiring and verifying the peer's certificate.
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Logf("%s %v:\n%s", filepath.Base(name), args, out)
		}
		return err
	}
	if err := run(echoscu, "+tla", "-rc", "+cf", caFile, "-aec", "LIFELINE", "127.0.0.1", port); err != nil {
		t.Fatalf("echoscu verifying the box: %v", err)
	}
	f := filepath.Join(t.TempDir(), "ct.dcm")
	os.WriteFile(f, phantom.File(phantom.Spec{SOPInstanceUID: "2.25.810", StudyUID: "2.25.81", DefinedLengths: true}), 0o600)
	if err := run(storescu, "+tla", "-rc", "+cf", caFile, "-aec", "LIFELINE", "127.0.0.1", port, f); err != nil {
		t.Fatalf("storescu verifying the box: %v", err)
	}
	if st := scp.Status(); st.Instances != 1 || !st.TLS {
		t.Errorf("receiver status after storescu over TLS: %+v", st)
	}
	other, _ := writeClientOnlyServer(t, t.TempDir())
	if err := run(echoscu, "+tla", "-rc", "+cf", other, "-aec", "LIFELINE", "127.0.0.1", port); err == nil {
		t.Errorf("echoscu trusting another authority accepted the box: verification is not in force")
	}

	// The old behaviour, for contrast: a client-only certificate from a trusted
	// authority is refused by the same verifying storescu.
	oldCA, oldCert := writeClientOnlyServer(t, t.TempDir())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{oldCert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	_, oldPort, _ := net.SplitHostPort(ln.Addr().String())
	if err := run(echoscu, "+tla", "-rc", "+cf", oldCA, "-aec", "LIFELINE", "127.0.0.1", oldPort); err == nil {
		t.Errorf("echoscu accepted a client-only certificate: this test cannot tell the fix from the bug")
	}
}

// writeClientOnlyServer makes an authority (written as PEM, path returned) and a
// certificate it signs for 127.0.0.1 whose only purpose is clientAuth, as the box's
// device certificate is.
func writeClientOnlyServer(t *testing.T, dir string) (string, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test hub CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "AMB-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}
}

func parsePEMCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
