package appliance

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"lifeline/internal/signin"
)

// ViewerSection is the hub's side for doctors' browsers ([viewer] in hub.toml): the
// ED screen, its sign-in and WHEP.
//
// Browsers have a listener of their own, apart from the boxes' server.listen, because
// one TLS endpoint cannot serve both reliably. Boxes pin the hub's private authority;
// browsers need the hospital's certificate ([server] cert_file). The server picks its
// certificate from the ClientHello, before it knows whether a client certificate will
// follow (TLS 1.3 asks for it only after the server's certificate), and a box and a
// browser reaching the hub by the same host name send the same SNI and the same ALPN.
// On a port of its own the viewer side asks for no client certificate, serves no box
// endpoint, and can be opened to the hospital's network without opening the boxes'.
type ViewerSection struct {
	// Listen is where browsers connect. Unset, it is server.listen's host on the
	// next port (8444 beside the default 8443; 0 beside 0), so that hubs started on
	// chosen ports get a viewer port of their own without another setting.
	Listen string `toml:"listen"`
	// IdleTimeout ends a session nobody used for this long; SessionLifetime ends
	// every session this long after sign-in, used or not.
	IdleTimeout     Duration `toml:"idle_timeout"`
	SessionLifetime Duration `toml:"session_lifetime"`
	// LinkLifetime is how long a one-time sign-in link from 'lifeline hub user link'
	// works (once).
	LinkLifetime Duration `toml:"link_lifetime"`
	// PublicURL is the address doctors' browsers reach this hub's viewer side at,
	// e.g. "https://hub-a.example:8444". With several hubs on one state, the others
	// send a doctor here to watch a box that publishes to this hub. Unset, it is the
	// first of server.names on the viewer's port (ViewerURL).
	PublicURL string `toml:"public_url"`
}

// defaultViewer is [viewer] with nothing set: beside server.listen, 30 min idle (a wall screen
// that is watched keeps its session; a tablet left on a counter does not), a 12 h
// shift at most, and links that must be used within 10 min.
func defaultViewer() ViewerSection {
	return ViewerSection{
		IdleTimeout:     Duration{30 * time.Minute},
		SessionLifetime: Duration{12 * time.Hour},
		LinkLifetime:    Duration{10 * time.Minute},
	}
}

// viewer checks [viewer] and the hospital's certificate in [server].
func (c *checker) viewer(v ViewerSection, server HubServer) {
	if v.Listen != "" {
		c.hostPort("viewer.listen", v.Listen)
	} else if _, port, err := net.SplitHostPort(server.Listen); err == nil && port == "65535" {
		c.fail("viewer.listen", "server.listen uses the last port, 65535, so the next one cannot be the viewer's; set viewer.listen")
	}
	c.positiveDuration("viewer.idle_timeout", v.IdleTimeout)
	c.positiveDuration("viewer.session_lifetime", v.SessionLifetime)
	c.positiveDuration("viewer.link_lifetime", v.LinkLifetime)
	if v.IdleTimeout.Duration > v.SessionLifetime.Duration {
		c.fail("viewer.idle_timeout", "%s is longer than viewer.session_lifetime %s", v.IdleTimeout.Duration, v.SessionLifetime.Duration)
	}
	if v.PublicURL != "" {
		c.publicURL("viewer.public_url", v.PublicURL)
	}
	if v.LinkLifetime.Duration > 24*time.Hour {
		c.fail("viewer.link_lifetime", "%s: a sign-in link is a password in a URL; keep it under 24h", v.LinkLifetime.Duration)
	}
	switch {
	case server.CertFile == "" && server.KeyFile == "":
	case server.CertFile == "":
		c.fail("server.cert_file", "server.key_file is set; set the certificate that goes with it")
	case server.KeyFile == "":
		c.fail("server.key_file", "server.cert_file is set; set the private key that goes with it")
	default:
		if _, err := loadBrowserCertificate(server.CertFile, server.KeyFile, time.Now()); err != nil {
			c.fail("server.cert_file", "%v", err)
		}
	}
}

// publicURL checks the viewer side's public address: an https origin, which the
// other hubs put a path after.
func (c *checker) publicURL(key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Scheme != "https":
		c.fail(key, "%q is not an https URL such as https://hub-a.example:8444", raw)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		c.fail(key, "%q: give the scheme, host and port only; the viewer side is served at the root", raw)
	}
}

// loadBrowserCertificate reads the hospital's certificate and key and checks them as
// parseBrowserCertificate does.
func loadBrowserCertificate(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	return parseBrowserCertificate(certPEM, keyPEM, certFile, keyFile, now)
}

// parseBrowserCertificate checks that a certificate and key belong together and that
// the certificate is valid at now, so that a wrong file is found when the hub starts
// or reloads, not by a doctor's browser.
func parseBrowserCertificate(certPEM, keyPEM []byte, certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", certFile, err)
	}
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("certificate %s is valid from %s until %s, not now", certFile,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	cert.Leaf = leaf
	return &cert, nil
}

// signinConfig is the sign-in policy [viewer] sets.
func signinConfig(v ViewerSection) signin.Config {
	return signin.Config{
		IdleTimeout:     v.IdleTimeout.Duration,
		SessionLifetime: v.SessionLifetime.Duration,
		LinkLifetime:    v.LinkLifetime.Duration,
	}
}

// ViewerListen is where the viewer listens: viewer.listen, or server.listen's host on
// the next port.
func (cfg HubConfig) ViewerListen() string {
	if cfg.Viewer.Listen != "" {
		return cfg.Viewer.Listen
	}
	host, port, err := net.SplitHostPort(cfg.Server.Listen)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil {
		return cfg.Server.Listen // refused by validation before it is used
	}
	if n != 0 {
		n++
	}
	return net.JoinHostPort(host, strconv.Itoa(n))
}

// PublicViewerURL is where other hubs send this hub's doctors: viewer.public_url,
// or ViewerURL. It has no trailing slash.
func (cfg HubConfig) PublicViewerURL() string {
	if cfg.Viewer.PublicURL != "" {
		return strings.TrimSuffix(cfg.Viewer.PublicURL, "/")
	}
	return cfg.ViewerURL()
}

// ViewerURL is the address doctors' browsers open: the first of server.names (the
// hospital's certificate must name it) on the viewer's port.
func (cfg HubConfig) ViewerURL() string {
	_, port, _ := net.SplitHostPort(cfg.ViewerListen())
	return "https://" + net.JoinHostPort(cfg.Server.Names[0], port)
}
