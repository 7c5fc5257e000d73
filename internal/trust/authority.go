// Package trust is the chain of trust between boxes and their hub: the hub's own
// certificate authority, the one-time enrolment codes that let a box get a client
// certificate from it, the registry of enrolled and revoked devices, and the mutual
// TLS configurations both sides use for every connection.
//
// A box's private key never leaves the box: it sends a certificate request, signed
// with the key it generated, together with the enrolment code.
package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"lifeline/internal/durable"
)

// Validity periods of the certificates the authority issues.
const (
	caValidity     = 20 * 365 * 24 * time.Hour
	deviceValidity = 3 * 365 * 24 * time.Hour
	serverValidity = 365 * 24 * time.Hour
)

// Authority is the hub's certificate authority. It signs the hub's server certificate
// and the boxes' client certificates.
type Authority struct {
	dir  string
	key  crypto.Signer
	cert *x509.Certificate
	life lifeSetting // renew.go: how long the certificates it issues are valid
}

// OpenAuthority loads the authority kept in dir, creating a new one on first use.
func OpenAuthority(dir string) (*Authority, error) {
	keyPath, certPath := filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.crt")
	key, errKey := readKey(keyPath)
	cert, errCert := readCert(certPath)
	switch {
	case errKey == nil && errCert == nil:
		return &Authority{dir: dir, key: key, cert: cert}, nil
	case errors.Is(errKey, os.ErrNotExist) && errors.Is(errCert, os.ErrNotExist):
		return createAuthority(dir)
	case errKey != nil:
		return nil, fmt.Errorf("trust: authority key: %w", errKey)
	default:
		return nil, fmt.Errorf("trust: authority certificate: %w", errCert)
	}
}

func createAuthority(dir string) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "Lifeline hub CA " + host, Organization: []string{"Lifeline"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("trust: create authority: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	if err := writeKey(filepath.Join(dir, "ca.key"), key); err != nil {
		return nil, err
	}
	if err := durable.WriteFile(filepath.Join(dir, "ca.crt"), encodeCert(der), 0o644); err != nil {
		return nil, err
	}
	return &Authority{dir: dir, key: key, cert: cert}, nil
}

// Certificate returns the authority's own certificate.
func (a *Authority) Certificate() *x509.Certificate { return a.cert }

// Pool returns a pool holding only the authority's certificate.
func (a *Authority) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.cert)
	return p
}

// Pin returns the short fingerprint of the authority that enrolment codes carry, so a
// box can tell the genuine hub from an impostor before it has the CA certificate.
func (a *Authority) Pin() string { return pinOf(a.cert) }

func pinOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base32.StdEncoding.EncodeToString(sum[:10])
}

// SignDevice issues a client certificate for deviceID over the public key in csr.
func (a *Authority) SignDevice(deviceID string, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("trust: certificate request signature: %w", err)
	}
	if err := ValidDeviceID(deviceID); err != nil {
		return nil, err
	}
	now, life := time.Now(), a.deviceLife()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: deviceID, Organization: []string{"Lifeline device"}},
		NotBefore:    now.Add(-backdate(life)),
		NotAfter:     now.Add(life),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, csr.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("trust: sign device %s: %w", deviceID, err)
	}
	return x509.ParseCertificate(der)
}

// ServerCertificate returns the hub's TLS certificate for hosts (DNS names or IP
// addresses), signed by the authority and chained to it. It is kept in the authority's
// directory and reissued when the hosts change or it nears expiry.
func (a *Authority) ServerCertificate(hosts []string) (tls.Certificate, error) {
	keyPath, certPath := filepath.Join(a.dir, "server.key"), filepath.Join(a.dir, "server.crt")
	if key, err := readKey(keyPath); err == nil {
		// A key that does not match is what a power cut between writing the new key
		// and its certificate leaves: issue again rather than fail every handshake.
		if cert, err := readCert(certPath); err == nil && coversHosts(cert, hosts) && keyMatches(cert, key) &&
			!DueForRenewal(cert, time.Now()) && cert.CheckSignatureFrom(a.cert) == nil {
			return tls.Certificate{Certificate: [][]byte{cert.Raw, a.cert.Raw}, PrivateKey: key, Leaf: cert}, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now, life := time.Now(), a.serverLife()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "Lifeline hub", Organization: []string{"Lifeline"}},
		NotBefore:    now.Add(-backdate(life)),
		NotAfter:     now.Add(life),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("trust: issue server certificate: %w", err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return tls.Certificate{}, err
	}
	if err := durable.WriteFile(certPath, encodeCert(der), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, a.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func coversHosts(cert *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// ServerTLS returns the hub's TLS configuration for hosts: it presents the server
// certificate and verifies a client certificate when one is given. A connection
// without one reaches only the enrolment endpoint; RequireDevice guards the rest.
func (a *Authority) ServerTLS(hosts []string) (*tls.Config, error) {
	cert, err := a.ServerCertificate(hosts)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    a.Pool(),
	}, nil
}

// DeviceID returns the device a verified TLS connection belongs to: the common name of
// its client certificate. ok is false when the peer presented no certificate.
func DeviceID(cs *tls.ConnectionState) (id string, serial string, ok bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", "", false
	}
	leaf := cs.VerifiedChains[0][0]
	return leaf.Subject.CommonName, leaf.SerialNumber.Text(16), true
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("trust: no randomness: " + err.Error())
	}
	return n
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("trust: encode key: %w", err)
	}
	return durable.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	return signer, nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseCertPEM(data, path)
}

func parseCertPEM(data []byte, where string) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", where)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return c, nil
}
