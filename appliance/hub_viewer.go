package appliance

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"lifeline/internal/service"
	"lifeline/internal/signin"
)

// The hub's side for doctors' browsers ([viewer] listen): sign-in, and whatever the
// ED screen and WHEP mount with HandleViewer, all over HTTPS with the hospital's
// certificate. configs_viewer.go says why this is a listener of its own.

// SignIn is the gate that the ED screen and WHEP wrap their handlers with:
//
//	hub.HandleViewer("GET /board", hub.SignIn().Require()(board))
//	hub.HandleViewer("POST /api/v1/ecg/{device}", hub.SignIn().Require(signin.RoleDoctor)(ecg))
//
// and signin.ViewerFrom(r.Context()) says who is watching.
func (h *Hub) SignIn() *signin.Gate { return h.gate }

// HandleViewer mounts a handler on the viewer listener; call before Run. A handler
// that streams (server-sent events, a WebSocket) lifts the per-request bounds with
// http.NewResponseController(w).SetReadDeadline(time.Time{}) and SetWriteDeadline.
func (h *Hub) HandleViewer(pattern string, handler http.Handler) { h.viewer.Handle(pattern, handler) }

// ViewerURL is the address a doctor's browser opens: the first of server.names on the
// viewer listener's port. It is known once Run has bound the listener.
func (h *Hub) ViewerURL() string {
	cfg := h.cfg
	if addr := h.viewerAddr.Load(); addr != nil {
		cfg.Viewer.Listen = *addr
	}
	return cfg.ViewerURL()
}

// viewerReadTimeout bounds reading one request on the viewer side: a sign-in or a
// WHEP offer is a few kilobytes.
const viewerReadTimeout = 30 * time.Second

// certReloadEvery is how often the hospital's certificate files are read again; a
// renewed certificate reaches browsers within this, without a restart.
const certReloadEvery = 2 * time.Second

// viewerService serves the viewer mux over HTTPS on ln with the hospital's
// certificate (or the hub's own when none is configured), reloading it when its files
// change.
func (h *Hub) viewerService(ln net.Listener, own func() *tls.Certificate) service.Service {
	return service.Service{Name: "viewer-https", Run: func(ctx context.Context, health *service.Health) error {
		cert := &browserCertificate{certFile: h.cfg.Server.CertFile, keyFile: h.cfg.Server.KeyFile, log: h.log, own: own}
		if cert.certFile != "" {
			if err := cert.reload(time.Now()); err != nil {
				return err
			}
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(viewerReadTimeout))
				header := w.Header()
				header.Set("X-Content-Type-Options", "nosniff")
				if cert.certFile != "" {
					// With the hospital's certificate, browsers may insist on HTTPS
					// for this host from now on; not with the hub's own, which a
					// browser that was told so could then never be shown.
					header.Set("Strict-Transport-Security", "max-age=31536000")
				}
				h.viewer.ServeHTTP(w, r)
			}),
			TLSConfig: &tls.Config{
				MinVersion:     tls.VersionTLS12, // browsers on older hospital tablets
				GetCertificate: cert.get,
				NextProtos:     []string{"h2", "http/1.1"},
			},
			// No server-wide ReadTimeout: the handler above bounds each request's
			// read (viewerReadTimeout), which a streaming handler may lift; such a
			// handler lifts the write bound with SetWriteDeadline as well.
			ReadHeaderTimeout: httpReadHeaderTimeout,
			WriteTimeout:      httpWriteTimeout,
			IdleTimeout:       httpIdleTimeout,
			ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		}
		errc := make(chan error, 1)
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
		health.Ready(cert.describe(ln.Addr().String()))
		tick := time.NewTicker(certReloadEvery)
		defer tick.Stop()
		for {
			select {
			case err := <-errc:
				return fmt.Errorf("viewer https on %s: %w", ln.Addr(), err)
			case <-ctx.Done():
				return shutdown(srv, errc)
			case <-tick.C:
				if cert.certFile == "" {
					continue
				}
				if err := cert.reload(time.Now()); err != nil {
					health.Degraded("serving the previous certificate; the new files are not usable", err)
				} else {
					health.Ready(cert.describe(ln.Addr().String()))
				}
			}
		}
	}}
}

// browserCertificate is the hospital's certificate as browsers get it, replaced
// whenever its files change to a pair that loads.
type browserCertificate struct {
	certFile, keyFile string
	log               *slog.Logger
	current           atomic.Pointer[tls.Certificate]
	// own is the hub's server certificate, shown when no hospital certificate is
	// configured: asked at every handshake, as the hub renews it while it runs.
	own func() *tls.Certificate

	mu                sync.Mutex
	lastCert, lastKey []byte // the files' contents when last loaded
	lastErr           string // the last reload error, logged once
}

func (b *browserCertificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if b.certFile == "" {
		return b.own(), nil
	}
	return b.current.Load(), nil
}

// reload reads both files and, when either changed, takes the new pair if it loads
// and is valid at now. A half-replaced pair (the certificate written, not yet its
// key) fails to load and is tried again at the next tick; the old certificate stays.
func (b *browserCertificate) reload(now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	certPEM, err := os.ReadFile(b.certFile)
	if err != nil {
		return b.failed(fmt.Errorf("server.cert_file: %w", err))
	}
	keyPEM, err := os.ReadFile(b.keyFile)
	if err != nil {
		return b.failed(fmt.Errorf("server.key_file: %w", err))
	}
	if b.current.Load() != nil && bytes.Equal(certPEM, b.lastCert) && bytes.Equal(keyPEM, b.lastKey) {
		return nil
	}
	cert, err := parseBrowserCertificate(certPEM, keyPEM, b.certFile, b.keyFile, now)
	if err != nil {
		return b.failed(err)
	}
	renewed := b.current.Load() != nil
	b.current.Store(cert)
	b.lastCert, b.lastKey, b.lastErr = certPEM, keyPEM, ""
	if renewed {
		b.log.Info("viewer certificate reloaded", "file", b.certFile, "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	}
	return nil
}

// failed logs a reload error once, not at every tick.
func (b *browserCertificate) failed(err error) error {
	if err.Error() != b.lastErr {
		b.lastErr = err.Error()
		b.log.Error("viewer certificate not loaded; keeping the previous one", "err", err)
	}
	return err
}

// describe says for the status page what browsers get.
func (b *browserCertificate) describe(addr string) string {
	shown, _ := b.get(nil)
	leaf := shown.Leaf
	if leaf == nil {
		leaf, _ = x509.ParseCertificate(shown.Certificate[0])
	}
	what := "the hospital's certificate " + b.certFile
	if b.certFile == "" {
		what = "the hub's own certificate (browsers warn: set server.cert_file)"
	}
	return fmt.Sprintf("HTTPS for browsers on %s with %s, valid until %s", addr, what, leaf.NotAfter.UTC().Format("2006-01-02"))
}
