package trust

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/hubstate"
)

// RenewPath is where a box renews its certificate over its current identity. It lives
// on the hub's box port (server.listen) behind mutual TLS.
const RenewPath = "/api/v1/certificate/renew"

// maxRenewBody bounds a renewal request: a P-256 certificate request in PEM is about
// 600 bytes, so 16 KiB leaves room for any key a box could sensibly make.
const maxRenewBody = 16 << 10

type renewRequest struct {
	CSR string `json:"csr"` // PEM certificate request for the box's new key
}

// renewedDir is where the hub keeps the latest certificate it issued each device by
// renewal, so that a box whose answer was lost (a tunnel, a power cut) can ask again
// with the same new key and get the same certificate back.
func renewedDir(caDir string) string { return filepath.Join(caDir, "renewed") }

// RenewHandler serves RenewPath on the hub. The box presents its current certificate
// (verified by TLS against the hub's authority) and sends a request for a new key it
// made itself; the hub signs it for the same device, makes it the device's current
// certificate (the old one is refused from then on as superseded) and records that in
// the audit log before anything changes. Renewals of one device run one at a time.
func RenewHandler(auth *Authority, reg *Registry, audit Auditor) http.Handler {
	var busy sync.Map // device ID → struct{}, while its renewal runs
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeEnrollError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		device, serial, ok := DeviceID(r.TLS)
		if !ok {
			audit.Audit("renew.refused", map[string]any{"remote": r.RemoteAddr, "reason": "no client certificate"})
			writeEnrollError(w, http.StatusForbidden, "renewal needs the box's current certificate; a box without one enrols with 'lifeline edge enroll'")
			return
		}
		if _, running := busy.LoadOrStore(device, struct{}{}); running {
			writeEnrollError(w, http.StatusTooManyRequests, fmt.Sprintf("a renewal for device %s is already in progress", device))
			return
		}
		defer busy.Delete(device)
		rn := &renewal{auth: auth, reg: reg, audit: audit, device: device, serial: serial,
			until: r.TLS.VerifiedChains[0][0].NotAfter, remote: r.RemoteAddr}
		issued, status, err := rn.serve(w, r)
		if err != nil {
			writeEnrollError(w, status, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(enrollResponse{
			DeviceID:    device,
			Certificate: string(encodeCert(issued.Raw)),
			Authority:   string(encodeCert(auth.cert.Raw)),
		})
	})
}

// renewal is one renewal request, from the device its verified certificate names.
type renewal struct {
	auth           *Authority
	reg            *Registry
	audit          Auditor
	device, serial string    // from the certificate the box presented
	until          time.Time // when that certificate runs out
	remote         string
}

// serve checks the request and the device, and issues (or, for a repeated request,
// returns again) the device's new certificate. The status goes with a non-nil error.
func (rn *renewal) serve(w http.ResponseWriter, r *http.Request) (*x509.Certificate, int, error) {
	csr, err := readRenewRequest(w, r)
	if err != nil {
		rn.refuse(err.Error())
		return nil, http.StatusBadRequest, err
	}
	d, err := rn.reg.state.Device(r.Context(), rn.device)
	switch {
	case errors.Is(err, hubstate.ErrNotFound):
		rn.refuse(ErrUnknownDevice.Error())
		return nil, http.StatusForbidden, fmt.Errorf("device %s: %w", rn.device, ErrUnknownDevice)
	case err != nil:
		return nil, http.StatusInternalServerError, fmt.Errorf("device %s: %w", rn.device, err)
	case d.State == StateRevoked:
		rn.refuse(ErrRevoked.Error())
		return nil, http.StatusForbidden, fmt.Errorf("device %s: %w", rn.device, ErrRevoked)
	case d.State != StateActive:
		rn.refuse(ErrUnknownDevice.Error())
		return nil, http.StatusForbidden, fmt.Errorf("device %s: %w", rn.device, ErrUnknownDevice)
	case d.Serial != rn.serial:
		return rn.repeat(d, csr)
	}
	issued, err := rn.issue(r.Context(), csr)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrRevoked) {
			status = http.StatusForbidden
		}
		rn.refuse(err.Error())
		return nil, status, err
	}
	return issued, http.StatusOK, nil
}

// readRenewRequest reads the bounded body and its certificate request, whose
// signature proves that the box holds the new key.
func readRenewRequest(w http.ResponseWriter, r *http.Request) (*x509.CertificateRequest, error) {
	var req renewRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRenewBody)).Decode(&req); err != nil {
		return nil, fmt.Errorf("renewal request is not valid JSON of at most %d bytes: %w", maxRenewBody, err)
	}
	block, _ := pem.Decode([]byte(req.CSR))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("csr is not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr signature: %w", err)
	}
	return csr, nil
}

// repeat answers a box whose certificate was already replaced: when the request is for
// the key of the device's current certificate, the box asked before and lost the
// answer, and gets the same certificate again. Only the holder of that key can sign
// such a request, so nothing is given away; anything else is a superseded certificate.
func (rn *renewal) repeat(d Device, csr *x509.CertificateRequest) (*x509.Certificate, int, error) {
	current, err := readCert(filepath.Join(renewedDir(rn.auth.dir), rn.device+".crt"))
	if err == nil && current.SerialNumber.Text(16) == d.Serial && publicKeysEqual(current.PublicKey, csr.PublicKey) {
		rn.audit.Audit("renew.repeated", map[string]any{"device": rn.device, "remote": rn.remote, "serial": d.Serial})
		return current, http.StatusOK, nil
	}
	reason := fmt.Errorf("device %s: certificate %s was replaced by a later one: %w", rn.device, rn.serial, ErrRevoked)
	rn.refuse(reason.Error())
	return nil, http.StatusForbidden, reason
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	pa, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(b)
}

// issue signs the new certificate and makes it the device's current one. The hub's
// state offers one atomic step that replaces a device's certificate, redeeming an
// enrolment code; renewal uses it with a code of its own that never leaves the hub,
// so a device revoked meanwhile is refused there too. The certificate is kept for a
// repeated request, and its audit line made durable, inside that step: a renewal
// that is not audited does not happen.
func (rn *renewal) issue(ctx context.Context, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	secret, err := rn.reg.renewalCode(ctx, rn.device)
	if err != nil {
		return nil, err
	}
	var issued *x509.Certificate
	_, err = rn.reg.Redeem(ctx, secret, func(deviceID string) (string, time.Time, error) {
		if deviceID != rn.device {
			return "", time.Time{}, fmt.Errorf("renewal code names device %s, not %s", deviceID, rn.device)
		}
		cert, err := rn.auth.SignDevice(deviceID, csr)
		if err != nil {
			return "", time.Time{}, err
		}
		if err := durable.WriteFile(filepath.Join(renewedDir(rn.auth.dir), deviceID+".crt"), encodeCert(cert.Raw), 0o644); err != nil {
			return "", time.Time{}, fmt.Errorf("keep the renewed certificate of %s: %w", deviceID, err)
		}
		if err := rn.audit.Record("renew.accepted", map[string]any{"device": deviceID, "remote": rn.remote,
			"old_serial": rn.serial, "serial": cert.SerialNumber.Text(16), "not_after": cert.NotAfter.UTC()}); err != nil {
			return "", time.Time{}, fmt.Errorf("renewal not audited: %w", err)
		}
		issued = cert
		return cert.SerialNumber.Text(16), cert.NotAfter, nil
	})
	if err != nil {
		return nil, fmt.Errorf("renew device %s: %w", rn.device, err)
	}
	rn.reg.conns.renewed(rn.device, rn.serial, rn.until)
	return issued, nil
}

func (rn *renewal) refuse(reason string) {
	rn.audit.Audit("renew.refused", map[string]any{"device": rn.device, "remote": rn.remote, "serial": rn.serial, "reason": reason})
}

// renewalCodeLifetime bounds the internal code of one renewal: it is redeemed at once.
const renewalCodeLifetime = time.Minute

// renewalCode stores a one-time code for deviceID and returns its secret. The device
// must be known and not revoked (the state refuses a code for a revoked one).
func (r *Registry) renewalCode(ctx context.Context, deviceID string) (string, error) {
	raw := make([]byte, 10)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := base32.StdEncoding.EncodeToString(raw)
	code := hubstate.EnrolmentCode{Hash: codeKey(secret), Device: deviceID, Expires: r.now().Add(renewalCodeLifetime)}
	if err := r.state.IssueCode(ctx, code); err != nil {
		return "", fmt.Errorf("renew device %s: %w", deviceID, err)
	}
	return secret, nil
}
