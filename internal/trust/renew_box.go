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
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"lifeline/internal/durable"
)

// A box renews in steps that each leave a working identity on disk, whenever the power
// goes:
//
//  1. renew.key: the new key, made on the box and durably written before the hub sees
//     its certificate request; kept across failures, so a repeated request is for the
//     same key and the hub can hand back a certificate whose answer was lost.
//  2. renew.crt: the new certificate, durably written once it checks out.
//  3. renew.key becomes device.key, then renew.crt becomes device.crt, each rename
//     followed by an fsync of the directory.
//
// LoadIdentity finishes step 3 when it finds renew.crt, so a box that lost power
// after step 2 starts with the new identity. Before step 2 the old identity is on
// disk; should the hub already have replaced it, the box's renewal service asks again
// with renew.key at once and gets the new certificate back.
const (
	renewKey  = "renew.key"
	renewCert = "renew.crt"
)

// identityFiles serialises this process's reading and replacing of identity files, so
// that a reader never sees half of a renewal's renames and the certificate presented
// to the hub never goes back to an older one.
var identityFiles sync.Mutex

// renewals serialises Renew in this process.
var renewals sync.Mutex

// presented holds, per identity directory, the certificate that new connections from
// this process present: every TLS configuration made by ClientTLS asks it at each
// handshake, so a renewed certificate is used from the next connection on, by parts
// built long before the renewal.
// A connection made before the renewal keeps the old certificate; the hub keeps
// serving it (renew_conns.go).
var presented sync.Map // absolute identity directory → *atomic.Pointer[tls.Certificate]

func presentedFor(dir string) *atomic.Pointer[tls.Certificate] {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	p, _ := presented.LoadOrStore(dir, new(atomic.Pointer[tls.Certificate]))
	return p.(*atomic.Pointer[tls.Certificate])
}

// present makes id's certificate the one new connections present; the caller holds
// identityFiles.
func present(id *Identity) {
	cert := id.Cert
	presentedFor(id.dir).Store(&cert)
}

// clientCertificate is ClientTLS's GetClientCertificate: the latest certificate of the
// identity's directory, or the identity's own when it was not loaded from one.
func (id *Identity) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if id.dir != "" {
		if c := presentedFor(id.dir).Load(); c != nil {
			return c, nil
		}
	}
	return &id.Cert, nil
}

// sessionsByCertificate keeps TLS sessions apart per client certificate. A resumed TLS
// 1.3 session carries the certificate of the handshake that made it, so without this
// a box would keep presenting its replaced certificate on every resumed connection.
type sessionsByCertificate struct {
	tls.ClientSessionCache
	id *Identity
}

func (s sessionsByCertificate) prefix() string {
	c, _ := s.id.clientCertificate(nil)
	if c.Leaf == nil {
		return ""
	}
	return c.Leaf.SerialNumber.Text(16) + "|"
}

func (s sessionsByCertificate) Get(key string) (*tls.ClientSessionState, bool) {
	return s.ClientSessionCache.Get(s.prefix() + key)
}

func (s sessionsByCertificate) Put(key string, cs *tls.ClientSessionState) {
	s.ClientSessionCache.Put(s.prefix()+key, cs)
}

// finishRenewal completes the renames of a renewal whose certificate reached the disk
// (step 3 above). The caller holds identityFiles.
func finishRenewal(dir string) error {
	certPath, pendingKey := filepath.Join(dir, renewCert), filepath.Join(dir, renewKey)
	leaf, err := readCert(certPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("trust: renewed certificate: %w", err)
	}
	keyPath := pendingKey
	if _, err := os.Stat(pendingKey); errors.Is(err, os.ErrNotExist) {
		keyPath = filepath.Join(dir, identityKey) // the key was renamed already
	}
	key, err := readKey(keyPath)
	if err != nil {
		return fmt.Errorf("trust: key of the renewed certificate: %w", err)
	}
	if !keyMatches(leaf, key) {
		// A certificate for a key the box no longer holds can never be used.
		if err := os.Remove(certPath); err != nil {
			return fmt.Errorf("trust: remove unusable renewed certificate: %w", err)
		}
		return durable.SyncDir(dir)
	}
	if keyPath == pendingKey {
		if err := os.Rename(pendingKey, filepath.Join(dir, identityKey)); err != nil {
			return fmt.Errorf("trust: install renewed key in %s: %w", dir, err)
		}
		if err := durable.SyncDir(dir); err != nil {
			return err
		}
	}
	if err := os.Rename(certPath, filepath.Join(dir, identityCert)); err != nil {
		return fmt.Errorf("trust: install renewed certificate in %s: %w", dir, err)
	}
	return durable.SyncDir(dir)
}

// pendingRenewalKey returns the key of the renewal in progress in dir, making and
// durably storing a new one when there is none.
func pendingRenewalKey(dir string) (crypto.Signer, error) {
	path := filepath.Join(dir, renewKey)
	key, err := readKey(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("trust: renewal key: %w", err)
	}
	fresh, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeKey(path, fresh); err != nil {
		return nil, err
	}
	return fresh, nil
}

// RenewalPending reports whether a renewal was started in dir and not finished: the
// box made its new key, and may have lost the hub's answer.
func RenewalPending(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, renewKey))
	return err == nil
}

// ErrRenewalRefused wraps the hub's refusal of a renewal (revoked, replaced, unknown):
// asking again will not help, the box must be enrolled again.
var ErrRenewalRefused = errors.New("hub refused the renewal")

// Renew gets the box in dir a new certificate, for a new key made here, from the hub at
// hubURL over the box's current identity, stores it so that a power cut leaves either
// identity working, and makes the process present it from its next connection on.
func Renew(ctx context.Context, hubURL, dir string) (*Identity, error) {
	// One renewal at a time in this process: the renewal service and an operator's
	// forced renewal would otherwise race for the hub's one-per-device slot.
	renewals.Lock()
	defer renewals.Unlock()
	id, err := LoadIdentity(dir)
	if err != nil {
		return nil, err
	}
	identityFiles.Lock()
	key, err := pendingRenewalKey(dir)
	identityFiles.Unlock()
	if err != nil {
		return nil, err
	}
	leaf, err := requestRenewal(ctx, hubURL, id, key)
	if err != nil {
		return nil, err
	}
	identityFiles.Lock()
	err = durable.WriteFile(filepath.Join(dir, renewCert), encodeCert(leaf.Raw), 0o600)
	if err == nil {
		err = finishRenewal(dir)
	}
	identityFiles.Unlock()
	if err != nil {
		return nil, err
	}
	return LoadIdentity(dir)
}

// requestRenewal sends the request for key and checks what comes back: a certificate
// for this device and this key, signed by the authority the box pinned at enrolment.
func requestRenewal(ctx context.Context, hubURL string, id *Identity, key crypto.Signer) (*x509.Certificate, error) {
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id.DeviceID}}, key)
	if err != nil {
		return nil, fmt.Errorf("trust: renewal certificate request: %w", err)
	}
	body, _ := json.Marshal(renewRequest{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))})
	tr := &http.Transport{TLSClientConfig: id.ClientTLS()}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	url := strings.TrimRight(hubURL, "/") + RenewPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("trust: hub URL %q: %w", hubURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("trust: renew %s at %s: %w", id.DeviceID, hubURL, err)
	}
	defer resp.Body.Close()
	var out enrollResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return nil, fmt.Errorf("trust: renew %s at %s: hub answered %s without a readable body", id.DeviceID, hubURL, resp.Status)
	}
	switch {
	case resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("trust: renew %s at %s: %w: %s", id.DeviceID, hubURL, ErrRenewalRefused, out.Error)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("trust: renew %s at %s: hub answered %s: %s", id.DeviceID, hubURL, resp.Status, out.Error)
	}
	leaf, err := parseCertPEM([]byte(out.Certificate), "renewed certificate from "+hubURL)
	if err != nil {
		return nil, err
	}
	if err := checkRenewed(leaf, id, key); err != nil {
		return nil, fmt.Errorf("trust: renew %s at %s: %w", id.DeviceID, hubURL, err)
	}
	return leaf, nil
}

// checkRenewed refuses a certificate the box could not use or should not trust.
func checkRenewed(leaf *x509.Certificate, id *Identity, key crypto.Signer) error {
	if err := leaf.CheckSignatureFrom(id.HubCA); err != nil {
		return fmt.Errorf("renewed certificate is not signed by the pinned hub authority: %w", err)
	}
	if leaf.Subject.CommonName != id.DeviceID {
		return fmt.Errorf("renewed certificate is for device %q, not %q", leaf.Subject.CommonName, id.DeviceID)
	}
	if !keyMatches(leaf, key) {
		return errors.New("renewed certificate is not for this box's new key")
	}
	if time.Now().After(leaf.NotAfter) {
		return fmt.Errorf("renewed certificate ran out at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
