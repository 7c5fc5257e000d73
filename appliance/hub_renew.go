package appliance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/internal/service"
	"lifeline/internal/trust"
)

// The hub's certificates: it renews its own server certificate while it runs, renews
// the boxes' certificates over their current identity (trust.RenewPath on
// server.listen), and shows how long each of its certificates has left, on the status
// API and in /metrics.

// addRenewal mounts the boxes' renewal endpoint and the expiry gauges; OpenHub calls it
// after it made h.refusals. A renewal is recorded one line each, fail-closed; refusals
// go through h.refusals, so that a flood of them costs one audit line a minute.
func (h *Hub) addRenewal() {
	h.mux.Handle(trust.RenewPath, trust.RenewHandler(h.auth, h.devices, h.refusals))
	h.reg.MustRegister(certExpiry(func() map[string]*x509.Certificate {
		certs := map[string]*x509.Certificate{"hub-ca": h.auth.Certificate()}
		if c := h.serverCert.Load(); c != nil {
			certs["hub-server"] = c.Leaf()
		}
		return certs
	}))
}

// serverTLS returns the configuration of the hub's box port, with a server certificate
// that the "certificates" service renews while the hub runs; Run calls it.
func (h *Hub) serverTLS() (*tls.Config, error) {
	conf, cert, err := h.auth.RollingServerTLS(h.cfg.Server.Names)
	if err != nil {
		return nil, fmt.Errorf("hub server certificate for server.names %v: %w", h.cfg.Server.Names, err)
	}
	h.serverCert.Store(cert)
	h.sup.Add(h.certificateService(cert))
	return conf, nil
}

// certificateService renews the hub's server certificate when less than a third of
// its life is left, backing off while that fails, and reports how long the server
// certificate and the hub's authority have left: degraded under trust.ExpiryWarning.
func (h *Hub) certificateService(cert *trust.HubCertificate) service.Service {
	return service.Service{Name: "certificates", Run: func(ctx context.Context, health *service.Health) error {
		failures := 0
		for {
			renewed, err := cert.Renew(time.Now())
			leaf := cert.Leaf()
			next := trust.RenewalCheck(leaf)
			switch {
			case err != nil:
				failures++
				next = trust.RenewalBackoff(leaf, failures)
				h.log.Error("hub server certificate not renewed; presenting the current one", "not_after", leaf.NotAfter, "retry_in", next, "err", err)
			case renewed:
				failures = 0
				h.log.Info("hub server certificate renewed", "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
				h.audit.Audit("certificate.renewed", map[string]any{"cert": "hub-server", "serial": leaf.SerialNumber.Text(16), "not_after": leaf.NotAfter.UTC()})
			default:
				failures = 0
			}
			reportHubCertificates(health, leaf, h.auth.Certificate(), err, time.Now())
			if !service.Sleep(ctx, next) {
				return nil
			}
		}
	}}
}

// reportHubCertificates sets the certificate service's health from the expiry of the
// server certificate and the authority and the last renewal error.
func reportHubCertificates(health *service.Health, server, ca *x509.Certificate, renewErr error, now time.Time) {
	s, a := certificateCheck("hub-server", server, now), certificateCheck("hub-ca", ca, now)
	detail := s.Detail + "; " + a.Detail
	switch {
	case renewErr != nil:
		health.Degraded("renewal failed, retrying; "+detail, renewErr)
	case s.Result != "ok" || a.Result != "ok":
		health.Degraded(detail, errors.New(detail))
	default:
		health.Ready(detail)
	}
}

// certificateCheck says how long cert has left, as a self-test result: a warning under
// trust.ExpiryWarning (by then renewal has failed for months), a failure once it ran out.
func certificateCheck(what string, cert *x509.Certificate, now time.Time) Check {
	left := cert.NotAfter.Sub(now)
	days := int(left.Hours() / 24)
	until := cert.NotAfter.UTC().Format(time.RFC3339)
	switch {
	case left <= 0:
		return check("certificate", "fail", "%s certificate ran out at %s", what, until)
	case left < trust.ExpiryWarning:
		return check("certificate", "warn", "%s certificate runs out in %d days (%s) and was not renewed", what, days, until)
	}
	return check("certificate", "ok", "%s certificate valid until %s (%d days)", what, until, days)
}

// expiryDesc is the gauge of how long each certificate has left.
var expiryDesc = prometheus.NewDesc("lifeline_certificate_expiry_seconds",
	"Seconds until the certificate runs out, negative once it has: cert is hub-server or hub-ca on the hub, device on the box.",
	[]string{"cert"}, nil)

// certExpiry is a collector of expiryDesc over the certificates certs returns at each
// scrape, so the value is always the current one, renewals included.
type certExpiry func() map[string]*x509.Certificate

func (c certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c certExpiry) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for name, cert := range c() {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, cert.NotAfter.Sub(now).Seconds(), name)
	}
}
