package dimse_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/peers"
)

// selfSigned makes the box's certificate for 127.0.0.1 and writes it as PEM.
func selfSigned(t *testing.T, dir string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lifeline-box"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "box.pem")
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, p
}

func TestDICOMTLS(t *testing.T) {
	cert, certPEM := selfSigned(t, t.TempDir())
	b := startBox(t, dimse.SCPConfig{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}, spool.Config{})
	pool := x509.NewCertPool()
	pool.AddCert(must(x509.ParseCertificate(cert.Certificate[0])))
	ctx := context.Background()

	// Plain TCP to a TLS port fails; the box keeps serving.
	if _, err := dimse.Dial(ctx, b.addr, "PLAIN", "LIFELINE", ctContexts, dimse.SCUOptions{Timeout: 2 * time.Second}); err == nil {
		t.Fatalf("plain association to the TLS port succeeded")
	}
	a, err := dimse.Dial(ctx, b.addr, "SECURE", "LIFELINE", ctContexts, dimse.SCUOptions{TLS: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	f := writeFile(t, t.TempDir(), "a.dcm", phantom.File(phantom.Spec{SOPInstanceUID: "2.25.31"}))
	file, _ := dicom.OpenFile(f)
	if st, err := a.Store(ctx, file); err != nil || st != 0 {
		t.Fatalf("C-STORE over TLS: 0x%04x %v", st, err)
	}
	a.Release()
	if _, err := b.spool.Instance("2.25.31"); err != nil {
		t.Fatal(err)
	}
	if !b.scp.Status().TLS {
		t.Errorf("status does not show TLS")
	}

	p := peers.Need(t, "echoscu", "storescu")
	run(t, p[0], "+tla", "+cf", certPEM, "-aec", "LIFELINE", "127.0.0.1", b.port)
	g := writeFile(t, t.TempDir(), "b.dcm", phantom.File(phantom.Spec{SOPInstanceUID: "2.25.32"}))
	run(t, p[1], "+tla", "+cf", certPEM, "-aec", "LIFELINE", "127.0.0.1", b.port, g)
	if _, err := b.spool.Instance("2.25.32"); err != nil {
		t.Fatalf("storescu over TLS: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
