package appliance

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"lifeline/internal/service"
	"lifeline/internal/trust"
)

// The box renews its certificate over its current identity before it runs out: the
// "certificate-renewal" service does so when less than a third of its life is left,
// backing off while the hub cannot be reached or refuses; an operator forces it with
// 'lifeline edge renew', which asks the running box at CertificateRenewPath.

// CertificateRenewPath is where the box's HTTP API takes an operator's forced renewal.
const CertificateRenewPath = "/api/v1/certificate/renew"

// RenewAnswer is the box's answer to a forced renewal.
type RenewAnswer struct {
	Device   string    `json:"device"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}

// addRenewal adds the renewal service, the operator's endpoint and the device
// certificate's expiry gauge; OpenEdge calls it.
func (e *Edge) addRenewal() {
	e.reg.MustRegister(certExpiry(func() map[string]*x509.Certificate {
		if id := e.Identity(); id != nil {
			return map[string]*x509.Certificate{"device": id.Leaf}
		}
		return nil
	}))
	renew := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "a renewal is a POST with Content-Type: application/json")
			return
		}
		id, err := e.renewCertificate(r.Context(), "operator")
		switch {
		case errors.Is(err, trust.ErrNotEnrolled):
			writeError(w, http.StatusConflict, err.Error())
			return
		case err != nil:
			writeError(w, http.StatusBadGateway, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, RenewAnswer{Device: id.DeviceID, Serial: id.Leaf.SerialNumber.Text(16), NotAfter: id.Leaf.NotAfter})
	})
	e.mux.Handle("POST "+CertificateRenewPath, http.NewCrossOriginProtection().Handler(renew))
	e.sup.Add(service.Service{Name: "certificate-renewal", Run: e.runRenewal})
}

// renewCertificate renews the box's certificate now and starts using it: the parts
// that talk to the hub present it from their next connection on. why goes to the log.
func (e *Edge) renewCertificate(ctx context.Context, why string) (*trust.Identity, error) {
	dir := IdentityDir(e.dataDir)
	old, err := trust.LoadIdentity(dir)
	if err != nil {
		return nil, err
	}
	id, err := trust.Renew(ctx, e.hubs.Current(), dir)
	if err != nil {
		e.log.Warn("box certificate not renewed", "why", why, "device", old.DeviceID, "not_after", old.Leaf.NotAfter, "err", err)
		return nil, err
	}
	e.mu.Lock()
	e.identity = id
	e.mu.Unlock()
	e.log.Info("box certificate renewed", "why", why, "device", id.DeviceID,
		"old_serial", old.Leaf.SerialNumber.Text(16), "serial", id.Leaf.SerialNumber.Text(16), "not_after", id.Leaf.NotAfter)
	e.recordCheck(certificateCheck("box", id.Leaf, time.Now()))
	return id, nil
}

// runRenewal is the certificate-renewal service. A renewal that was started and not
// finished (the box lost the hub's answer, or its power) is taken up again at once:
// the hub may already have replaced the certificate on disk.
func (e *Edge) runRenewal(ctx context.Context, h *service.Health) error {
	dir := IdentityDir(e.dataDir)
	failures := 0
	for {
		id, err := waitForIdentity(ctx, h, e.dataDir, "the box's certificate is renewed once the box is enrolled")
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		next := trust.RenewalCheck(id.Leaf)
		var renewErr error
		if trust.DueForRenewal(id.Leaf, time.Now()) || trust.RenewalPending(dir) {
			if renewed, err := e.renewCertificate(ctx, "due"); err != nil {
				failures++
				next, renewErr = trust.RenewalBackoff(id.Leaf, failures), err
			} else {
				failures, id = 0, renewed
				next = trust.RenewalCheck(id.Leaf)
			}
		}
		c := certificateCheck("box", id.Leaf, time.Now())
		e.recordCheck(c)
		switch {
		case renewErr != nil:
			h.Degraded(fmt.Sprintf("renewal failed %d time(s), next try in %s; %s", failures, next.Round(time.Second), c.Detail), renewErr)
		case c.Result != "ok":
			h.Degraded(c.Detail, errors.New(c.Detail))
		default:
			h.Ready(fmt.Sprintf("%s; renewed when a third of its life is left", c.Detail))
		}
		if !service.Sleep(ctx, next) {
			return nil
		}
	}
}

// EdgeRenew renews the certificate of the box at dataDir with the hub at hubURL, for a
// box that is not running; a running box is asked at CertificateRenewPath instead, so
// that it starts using the new certificate at once.
func EdgeRenew(ctx context.Context, hubURL, dataDir string) (*trust.Identity, error) {
	return trust.Renew(ctx, hubURL, IdentityDir(dataDir))
}
