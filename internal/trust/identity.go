package trust

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"lifeline/internal/durable"
)

// ErrNotEnrolled is returned by LoadIdentity when the box has no identity yet.
var ErrNotEnrolled = errors.New("box is not enrolled with a hub; run 'lifeline edge enroll --hub URL --code CODE'")

// Identity is a box's own identity: its private key, the certificate its hub issued
// and the hub's authority, which is the only one the box trusts for its hub.
type Identity struct {
	DeviceID string
	Cert     tls.Certificate
	Leaf     *x509.Certificate
	HubCA    *x509.Certificate

	dir string // where it was loaded from; renewal replaces it there (renew_box.go)
}

const (
	identityKey  = "device.key"
	identityCert = "device.crt"
	identityCA   = "hub-ca.crt"
)

// LoadIdentity reads the identity stored in dir, finishing a renewal that a power cut
// interrupted, and makes its certificate the one this process's connections present.
func LoadIdentity(dir string) (*Identity, error) {
	identityFiles.Lock()
	defer identityFiles.Unlock()
	if err := finishRenewal(dir); err != nil {
		return nil, err
	}
	key, err := readKey(filepath.Join(dir, identityKey))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("trust: identity key: %w", err)
	}
	leaf, err := readCert(filepath.Join(dir, identityCert))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("trust: identity certificate: %w", err)
	}
	ca, err := readCert(filepath.Join(dir, identityCA))
	if err != nil {
		return nil, fmt.Errorf("trust: hub authority: %w", err)
	}
	id := &Identity{
		DeviceID: leaf.Subject.CommonName,
		Cert:     tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf},
		Leaf:     leaf,
		HubCA:    ca,
		dir:      dir,
	}
	present(id)
	return id, nil
}

// saveIdentity stores key, certificate and hub authority in dir. The certificate is
// written last: LoadIdentity treats a box without it as not enrolled, so a power cut
// in the middle leaves a box that simply enrols again.
func saveIdentity(dir string, key crypto.Signer, leaf, ca *x509.Certificate) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("trust: identity directory: %w", err)
	}
	if err := writeKey(filepath.Join(dir, identityKey), key); err != nil {
		return err
	}
	if err := durable.WriteFile(filepath.Join(dir, identityCA), encodeCert(ca.Raw), 0o600); err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, identityCert), encodeCert(leaf.Raw), 0o600)
}

// ClientTLS returns the configuration for every connection from the box to its hub:
// the box's certificate, and only the hub's authority as a root. A connection made
// after a renewal presents the renewed certificate.
func (id *Identity) ClientTLS() *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(id.HubCA)
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		Certificates:         []tls.Certificate{id.Cert},
		GetClientCertificate: id.clientCertificate,
		RootCAs:              roots,
		ClientSessionCache:   sessionsByCertificate{tls.NewLRUClientSessionCache(16), id},
	}
}
