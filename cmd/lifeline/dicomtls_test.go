package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// TestDICOMTLSReceiverWaitsForEnrolment runs a box with DICOM TLS before it is
// enrolled: the receiver must say why it waits and listen on nothing, then, once
// `lifeline edge enroll` ran, listen without a restart and present the box's own
// certificate, issued by the hub's authority; the status names the box at once.
func TestDICOMTLSReceiverWaitsForEnrolment(t *testing.T) {
	sys := newTestSystem(t, "AMB-TLS-1", "", "tls = true\n")
	sys.startHub(t)
	sys.startBox(t)
	dicomAddr, edgeData := sys.dicomAddr, sys.edgeData

	receiver := func() (state, detail string) { return sys.boxStatus(t).service("dicom-receiver") }
	wait.For(t, 10*time.Second, "the receiver waiting for enrolment", func() bool {
		state, detail := receiver()
		return state == "degraded" && strings.Contains(detail, "enrol the box first")
	})
	if conn, err := net.Dial("tcp", dicomAddr); err == nil {
		conn.Close()
		t.Fatalf("a box that is not enrolled accepts DICOM TLS connections on %s", dicomAddr)
	}

	sys.enrolBox(t)
	wait.For(t, 15*time.Second, "the receiver ready after enrolment", func() bool {
		state, _ := receiver()
		return state == "ready"
	})
	// The crew's banner names the box soon after enrolment, not a hub check (30 s) later.
	wait.For(t, 10*time.Second, "the status naming the enrolled box", func() bool { return sys.boxStatus(t).Device == "AMB-TLS-1" })
	// Only what the receiver presents is checked here, not a client's verification.
	conn, err := tls.Dial("tcp", dicomAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("DICOM TLS handshake with the enrolled box: %v", err)
	}
	presented := conn.ConnectionState().PeerCertificates
	conn.Close()
	device, ca := readCert(t, filepath.Join(edgeData, "identity", "device.crt")), readCert(t, filepath.Join(edgeData, "identity", "hub-ca.crt"))
	if len(presented) == 0 || !presented[0].Equal(device) {
		t.Fatalf("the receiver presents %v, not the box's certificate %s", presented, device.Subject)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := device.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the presented certificate does not chain to the hub's authority: %v", err)
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
