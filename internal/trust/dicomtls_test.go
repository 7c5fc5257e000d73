package trust

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestDICOMServerCertificate: the box's DICOM certificate is for serving, names the
// hosts, chains to the box's own DICOM authority (not the hub's), survives a restart
// unchanged, and is reissued under the same authority when the hosts change or it
// nears expiry, so that the modalities' trust list never needs touching.
func TestDICOMServerCertificate(t *testing.T) {
	dir := t.TempDir()
	hosts := []string{"box.clinic.example", "10.20.0.5"}
	d, err := OpenDICOMServer(dir, "AMB-1", func() []string { return hosts })
	if err != nil {
		t.Fatal(err)
	}
	leaf := d.Leaf()
	roots := x509.NewCertPool()
	roots.AddCert(d.CA())
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: h, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate for %s: %v", h, err)
		}
	}
	if slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || leaf.IsCA || !d.CA().IsCA || !d.CA().MaxPathLenZero {
		t.Errorf("certificate purposes: leaf %v CA %v, authority CA %v", leaf.ExtKeyUsage, leaf.IsCA, d.CA().IsCA)
	}
	if fi, err := os.Stat(filepath.Join(dir, dicomCAKey)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("authority key: %v %v", fi, err)
	}

	again, err := OpenDICOMServer(dir, "AMB-1", func() []string { return hosts })
	if err != nil {
		t.Fatal(err)
	}
	if !again.Leaf().Equal(leaf) || !again.CA().Equal(d.CA()) {
		t.Fatalf("a restart issued a new certificate or authority")
	}

	hosts = append(hosts, "10.20.0.6") // the box got another address
	cert, err := again.current(time.Now().Add(2 * dicomHostsCheck))
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf.Equal(leaf) || cert.Leaf.VerifyHostname("10.20.0.6") != nil || cert.Leaf.CheckSignatureFrom(d.CA()) != nil {
		t.Errorf("after a new address: reissued %v, names %v", !cert.Leaf.Equal(leaf), cert.Leaf.IPAddresses)
	}
	nearExpiry := cert.Leaf.NotAfter.Add(-dicomRenewBefore + time.Hour)
	renewed, err := again.current(nearExpiry)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Leaf.Equal(cert.Leaf) || renewed.Leaf.CheckSignatureFrom(d.CA()) != nil {
		t.Errorf("not renewed under the same authority %v before expiry", d.CA().Subject)
	}

	// A key written without its certificate (a crash between the two) is replaced.
	os.WriteFile(filepath.Join(dir, dicomServerKey), []byte(mustPEMKey(t)), 0o600)
	third, err := OpenDICOMServer(dir, "AMB-1", func() []string { return hosts })
	if err != nil {
		t.Fatal(err)
	}
	if third.Leaf().Equal(renewed.Leaf) {
		t.Errorf("kept a certificate whose key was replaced")
	}
}

func mustPEMKey(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := OpenDICOMServer(dir, "X", func() []string { return []string{"x"} }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, dicomServerKey))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
