package trust

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Certificates are renewed over their current identity when less than a third of their
// life is left: a box that is switched off for months, or a hub whose renewal keeps
// failing, still has a long margin to be noticed (the self-test warns below
// ExpiryWarning) before anything stops working.

// ExpiryWarning is how close to expiry a certificate makes the self-test warn: by then
// renewal has failed for a long time, and an operator must look.
const ExpiryWarning = 30 * 24 * time.Hour

// Lifetimes are how long the certificates an authority issues are valid. A zero field
// means the default (three years for a device, one for the hub's server certificate).
type Lifetimes struct {
	Device time.Duration
	Server time.Duration
}

// lifeSetting holds an authority's lifetimes, which SetLifetimes may change while the
// hub signs: a policy change takes effect at the next certificate.
type lifeSetting struct {
	mu   sync.Mutex
	life Lifetimes
}

// SetLifetimes changes how long the certificates the authority issues from now on are
// valid; certificates already issued keep theirs. Short lifetimes make renewal happen
// often, which is how tests see it work.
func (a *Authority) SetLifetimes(l Lifetimes) {
	a.life.mu.Lock()
	defer a.life.mu.Unlock()
	a.life.life = l
}

func (a *Authority) deviceLife() time.Duration {
	a.life.mu.Lock()
	defer a.life.mu.Unlock()
	if a.life.life.Device > 0 {
		return a.life.life.Device
	}
	return deviceValidity
}

func (a *Authority) serverLife() time.Duration {
	a.life.mu.Lock()
	defer a.life.mu.Unlock()
	if a.life.life.Server > 0 {
		return a.life.life.Server
	}
	return serverValidity
}

// backdate is how far before its issue a certificate starts to be valid, so that a
// peer whose clock is a little behind accepts it: an hour, or a tenth of a short life,
// so that the third of the life renewal counts on is not mostly the backdating.
func backdate(life time.Duration) time.Duration { return min(time.Hour, life/10) }

// DueForRenewal reports whether cert has less than a third of its life left at now.
func DueForRenewal(cert *x509.Certificate, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Sub(now) < life/3
}

// RenewalCheck is how often a certificate of this life is looked at for renewal: often
// enough that a failed renewal is tried again many times before the certificate runs
// out, rarely enough that nobody notices the looking. An hour for real lifetimes.
func RenewalCheck(cert *x509.Certificate) time.Duration {
	return clampDuration(cert.NotAfter.Sub(cert.NotBefore)/100, 200*time.Millisecond, time.Hour)
}

// RenewalBackoff is how long to wait after the failures-th failed renewal of cert in a
// row: doubling from a minute up to six hours for real lifetimes (proportionally less
// for short ones), so that a hub that is down is not hammered and a hub that is back
// is noticed soon.
func RenewalBackoff(cert *x509.Certificate, failures int) time.Duration {
	life := cert.NotAfter.Sub(cert.NotBefore)
	first := clampDuration(life/1000, 100*time.Millisecond, time.Minute)
	ceiling := clampDuration(life/50, first, 6*time.Hour)
	d := first
	for i := 1; i < failures && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

func clampDuration(d, lo, hi time.Duration) time.Duration { return max(lo, min(d, hi)) }

// keyMatches reports whether key is the private key of cert's public key.
func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}

// HubCertificate is the hub's server certificate as its listeners present it. Renew
// replaces it in a running hub; every TLS configuration built with GetCertificate picks
// the new one up at its next handshake, without a restart.
type HubCertificate struct {
	auth    *Authority
	hosts   []string
	current atomic.Pointer[tls.Certificate]
}

// HubCertificate loads the hub's server certificate for hosts from the authority's
// directory, issuing one when there is none, it does not cover hosts, or it is due for
// renewal.
func (a *Authority) HubCertificate(hosts []string) (*HubCertificate, error) {
	c := &HubCertificate{auth: a, hosts: append([]string(nil), hosts...)}
	cert, err := a.ServerCertificate(hosts)
	if err != nil {
		return nil, err
	}
	c.current.Store(&cert)
	return c, nil
}

// RollingServerTLS is ServerTLS with a server certificate that Renew can replace while
// the hub runs: GetCertificate answers every handshake with the current one.
// Certificates stays empty, because TLS asks GetCertificate only then or when the
// client names a host, and boxes reach the hub by address as often as by name.
func (a *Authority) RollingServerTLS(hosts []string) (*tls.Config, *HubCertificate, error) {
	c, err := a.HubCertificate(hosts)
	if err != nil {
		return nil, nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: c.Get,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      a.Pool(),
	}, c, nil
}

// Get is a tls.Config.GetCertificate that presents the current certificate.
func (c *HubCertificate) Get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.current.Load(), nil
}

// Current returns the certificate presented now.
func (c *HubCertificate) Current() *tls.Certificate { return c.current.Load() }

// Leaf returns the parsed certificate presented now.
func (c *HubCertificate) Leaf() *x509.Certificate { return c.current.Load().Leaf }

// Renew issues a new server certificate when the current one is due (or the one on
// disk differs, e.g. after an operator removed it), and presents it from then on. The
// new key and certificate are on stable storage before the first handshake uses them,
// so a hub that restarts right after presents the same one. renewed tells whether the
// certificate changed.
func (c *HubCertificate) Renew(now time.Time) (renewed bool, err error) {
	old := c.current.Load()
	if !DueForRenewal(old.Leaf, now) && !c.changedOnDisk() {
		return false, nil
	}
	cert, err := c.auth.ServerCertificate(c.hosts)
	if err != nil {
		return false, fmt.Errorf("trust: renew the hub's server certificate in %s: %w", c.auth.dir, err)
	}
	if cert.Leaf.SerialNumber.Cmp(old.Leaf.SerialNumber) == 0 {
		return false, nil
	}
	c.current.Store(&cert)
	return true, nil
}

// changedOnDisk reports whether the certificate file no longer holds the certificate
// presented now.
func (c *HubCertificate) changedOnDisk() bool {
	disk, err := readCert(serverCertPath(c.auth.dir))
	return err != nil || disk.SerialNumber.Cmp(c.current.Load().Leaf.SerialNumber) != 0
}

func serverCertPath(dir string) string { return filepath.Join(dir, "server.crt") }
