package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"lifeline/internal/durable"
)

// The box's DICOM TLS authority and server certificate (box side). A modality that
// verifies its peer (PS3.15 B.1) needs the box to present a certificate for serving
// (serverAuth) that names the address the modality dials, chained to an authority the
// modality was given. The box's device certificate is for the hub only: it says
// clientAuth, and its authority (the hub's) vouches for every box, so a modality
// trusting it would accept any enrolled box. The box therefore keeps an authority of
// its own, used for nothing but its DICOM port: its certificate is what the clinic's
// IT installs on the modalities once, and it outlives every server certificate it
// signs, so that renewing those never touches a modality.
const (
	dicomCAValidity     = 20 * 365 * 24 * time.Hour
	dicomServerValidity = 397 * 24 * time.Hour
	// dicomRenewBefore is how long before expiry the server certificate is reissued.
	dicomRenewBefore = 30 * 24 * time.Hour
	// dicomHostsCheck is how often a running receiver looks again at the names and
	// addresses it must cover (an interface may gain an address after start).
	dicomHostsCheck = time.Minute

	dicomCAKey, dicomCACert         = "dicom-ca.key", "dicom-ca.crt"
	dicomServerKey, dicomServerCert = "dicom-server.key", "dicom-server.crt"
)

// DICOMServer is the box's certificate for DICOM TLS and the authority that issues it,
// kept in one directory.
type DICOMServer struct {
	dir   string
	hosts func() []string
	name  string // who the box is, for the certificates' subjects

	caKey crypto.Signer
	ca    *x509.Certificate

	mu      sync.Mutex
	cert    *tls.Certificate
	checked time.Time
}

// OpenDICOMServer loads the DICOM TLS authority kept in dir, creating it on first use,
// and a server certificate covering hosts() (DNS names and IP addresses), issuing a
// new one when the stored one does not cover them or nears expiry. name (the box's
// host name or device ID) goes into the subjects so that an operator can tell boxes'
// authorities apart in a modality's trust list.
func OpenDICOMServer(dir, name string, hosts func() []string) (*DICOMServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("trust: DICOM TLS directory %s: %w", dir, err)
	}
	d := &DICOMServer{dir: dir, hosts: hosts, name: name}
	if err := d.openAuthority(); err != nil {
		return nil, err
	}
	if _, err := d.current(time.Now()); err != nil {
		return nil, err
	}
	return d, nil
}

// CAFile is the path of the authority's certificate (PEM), which the modalities must
// trust.
func (d *DICOMServer) CAFile() string { return filepath.Join(d.dir, dicomCACert) }

// CA returns the authority's certificate.
func (d *DICOMServer) CA() *x509.Certificate { return d.ca }

// Leaf returns the server certificate presented now.
func (d *DICOMServer) Leaf() *x509.Certificate {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cert.Leaf
}

// TLSConfig returns the receiver's TLS configuration: TLS 1.2 or later (PS3.15's
// BCP 195 profile; many modalities have no TLS 1.3 yet), presenting the server
// certificate and its authority, which it renews in place as the box runs.
func (d *DICOMServer) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return d.current(time.Now())
		},
	}
}

// current returns the server certificate, first reissuing it when it nears expiry or
// no longer covers the box's names.
func (d *DICOMServer) current(now time.Time) (*tls.Certificate, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cert != nil && now.Sub(d.checked) < dicomHostsCheck && d.cert.Leaf.NotAfter.Sub(now) > dicomRenewBefore {
		return d.cert, nil
	}
	hosts := d.hosts()
	d.checked = now
	if d.cert == nil {
		d.cert = d.loadServer()
	}
	if d.cert != nil && d.cert.Leaf.NotAfter.Sub(now) > dicomRenewBefore && coversHosts(d.cert.Leaf, hosts) {
		return d.cert, nil
	}
	cert, err := d.issueServer(hosts, now)
	if err != nil {
		if d.cert != nil && now.Before(d.cert.Leaf.NotAfter) {
			// Keep serving with the old certificate; the next check tries again.
			return d.cert, nil
		}
		return nil, err
	}
	d.cert = cert
	return cert, nil
}

func (d *DICOMServer) openAuthority() error {
	keyPath, certPath := filepath.Join(d.dir, dicomCAKey), filepath.Join(d.dir, dicomCACert)
	key, errKey := readKey(keyPath)
	cert, errCert := readCert(certPath)
	switch {
	case errKey == nil && errCert == nil:
		d.caKey, d.ca = key, cert
		return nil
	case !errors.Is(errKey, os.ErrNotExist) || !errors.Is(errCert, os.ErrNotExist):
		return fmt.Errorf("trust: DICOM TLS authority in %s is incomplete or unreadable (key: %v; certificate: %v)", d.dir, errKey, errCert)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "Lifeline box DICOM CA " + d.name, Organization: []string{"Lifeline"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(dicomCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return fmt.Errorf("trust: create DICOM TLS authority: %w", err)
	}
	ca, _ := x509.ParseCertificate(der)
	if err := writeKey(keyPath, k); err != nil {
		return err
	}
	// Written last: without it, the next start makes a new authority rather than
	// find half of one.
	if err := durable.WriteFile(certPath, encodeCert(der), 0o644); err != nil {
		return err
	}
	d.caKey, d.ca = k, ca
	return nil
}

// loadServer returns the stored server certificate when it is one this authority
// issued, else nil.
func (d *DICOMServer) loadServer() *tls.Certificate {
	key, err := readKey(filepath.Join(d.dir, dicomServerKey))
	if err != nil {
		return nil
	}
	leaf, err := readCert(filepath.Join(d.dir, dicomServerCert))
	if err != nil || leaf.CheckSignatureFrom(d.ca) != nil {
		return nil
	}
	// A crash between writing a new key and its certificate leaves a pair that does
	// not match: issue a new one rather than fail every handshake.
	if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return nil
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw, d.ca.Raw}, PrivateKey: key, Leaf: leaf}
}

func (d *DICOMServer) issueServer(hosts []string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "Lifeline box DICOM " + d.name, Organization: []string{"Lifeline"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(dicomServerValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range slices.Compact(slices.Sorted(slices.Values(hosts))) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, d.ca, key.Public(), d.caKey)
	if err != nil {
		return nil, fmt.Errorf("trust: issue DICOM TLS server certificate: %w", err)
	}
	if err := writeKey(filepath.Join(d.dir, dicomServerKey), key); err != nil {
		return nil, err
	}
	if err := durable.WriteFile(filepath.Join(d.dir, dicomServerCert), encodeCert(der), 0o644); err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der, d.ca.Raw}, PrivateKey: key, Leaf: leaf}, nil
}
