package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// TestDICOMTLSReceiverServesBeforeEnrolment runs a box with DICOM TLS before it is
// enrolled: a clinic's modality can send at once. The receiver presents a server
// certificate of the box's own DICOM authority naming its listen address, which a
// verifying modality trusts from the file the box keeps and serves; after enrolment it
// still presents that one, never the box's hub certificate, and the status names the
// box at once.
func TestDICOMTLSReceiverServesBeforeEnrolment(t *testing.T) {
	sys := newTestSystem(t, "AMB-TLS-1", "", "tls = true\n")
	sys.startHub(t)
	sys.startBox(t)
	dicomAddr, edgeData := sys.dicomAddr, sys.edgeData
	receiver := func() (state, detail string) { return sys.boxStatus(t).service("dicom-receiver") }
	wait.For(t, 15*time.Second, "the receiver serving DICOM TLS before enrolment", func() bool {
		state, _ := receiver()
		return state == "ready"
	})
	caPath := filepath.Join(edgeData, "dicom-tls", "dicom-ca.crt")
	ca := readCert(t, caPath)
	onDisk, _ := os.ReadFile(caPath)
	res, err := http.Get("http://" + sys.edgeHTTP + "/api/v1/dicom-tls/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(served, onDisk) {
		t.Fatalf("GET /api/v1/dicom-tls/ca.pem: %d, %d bytes; want the authority on disk", res.StatusCode, len(served))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	host, _, _ := net.SplitHostPort(dicomAddr)
	verify := func() *x509.Certificate {
		t.Helper()
		// As a verifying modality does: the box's DICOM authority, the address dialled.
		conn, err := tls.Dial("tcp", dicomAddr, &tls.Config{RootCAs: roots, ServerName: host})
		if err != nil {
			t.Fatalf("DICOM TLS handshake verifying the box's DICOM authority: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	before := verify()

	sys.enrolBox(t)
	// The crew's banner names the box soon after enrolment, not a hub check (30 s) later.
	wait.For(t, 10*time.Second, "the status naming the enrolled box", func() bool { return sys.boxStatus(t).Device == "AMB-TLS-1" })
	after := verify()
	device := readCert(t, filepath.Join(edgeData, "identity", "device.crt"))
	if after.Equal(device) || !after.Equal(before) {
		t.Fatalf("after enrolment the receiver presents %s (the device certificate: %v); want the same DICOM certificate as before", after.Subject, after.Equal(device))
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cert
}
