package trust

import (
	"bytes"
	"context"
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
	"strings"
	"time"
)

// EnrollPath is where the hub takes enrolment requests.
const EnrollPath = "/api/v1/enroll"

type enrollRequest struct {
	Code string `json:"code"` // the secret part; the pin never leaves the box
	CSR  string `json:"csr"`  // PEM certificate request
}

type enrollResponse struct {
	DeviceID    string `json:"device_id"`
	Certificate string `json:"certificate"` // PEM
	Authority   string `json:"authority"`   // PEM
	Error       string `json:"error,omitempty"`
}

// Auditor records security events; the hub's audit log (internal/audit) implements
// it. Record is for security actions, which must not happen when their line is not
// durable; Audit is for observations, whose failure is only logged.
type Auditor interface {
	Record(event string, fields map[string]any) error
	Audit(event string, fields map[string]any)
}

// EnrollHandler serves EnrollPath on the hub. It needs no client certificate: the code
// is the credential.
func EnrollHandler(auth *Authority, reg *Registry, audit Auditor) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeEnrollError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		var req enrollRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			writeEnrollError(w, http.StatusBadRequest, "request is not valid JSON: "+err.Error())
			return
		}
		block, _ := pem.Decode([]byte(req.CSR))
		if block == nil || block.Type != "CERTIFICATE REQUEST" {
			writeEnrollError(w, http.StatusBadRequest, "csr is not a PEM certificate request")
			return
		}
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			writeEnrollError(w, http.StatusBadRequest, "csr: "+err.Error())
			return
		}
		var issued *x509.Certificate
		var audited bool
		device, err := reg.Redeem(r.Context(), strings.ToUpper(req.Code), func(deviceID string) (string, time.Time, error) {
			issued, err = auth.SignDevice(deviceID, csr)
			if err != nil {
				return "", time.Time{}, err
			}
			// Recorded before the code is marked used, in the same step: an enrolment
			// whose line is not durable does not happen (the code stays unused).
			if err := audit.Record("enrol.accepted", map[string]any{"device": deviceID, "remote": r.RemoteAddr, "serial": issued.SerialNumber.Text(16)}); err != nil {
				return "", time.Time{}, fmt.Errorf("enrolment not audited: %w", err)
			}
			audited = true
			return issued.SerialNumber.Text(16), issued.NotAfter, nil
		})
		if err != nil {
			status := http.StatusForbidden
			if !errors.Is(err, ErrCodeInvalid) && !errors.Is(err, ErrCodeUsed) && !errors.Is(err, ErrCodeExpired) && !errors.Is(err, ErrRevoked) {
				status = http.StatusInternalServerError
			}
			event := "enrol.refused"
			if audited {
				event = "enrol.rolled_back" // the acceptance line is there; the state did not take it
			}
			audit.Audit(event, map[string]any{"device": device, "remote": r.RemoteAddr, "reason": err.Error()})
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

func writeEnrollError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(enrollResponse{Error: msg})
}

// Enroll gets the box an identity from the hub at hubURL with an enrolment code, and
// stores it in dir. The hub's certificate must chain to an authority whose pin matches
// the code's, so a code typed into the wrong network cannot enrol the box elsewhere.
func Enroll(ctx context.Context, hubURL, code, dir string) (*Identity, error) {
	secret, pin, err := ParseCode(code)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "lifeline-box"}}, key)
	if err != nil {
		return nil, fmt.Errorf("trust: certificate request: %w", err)
	}
	body, _ := json.Marshal(enrollRequest{Code: secret, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))})

	var hubCA *x509.Certificate
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The box has no root for its hub yet; VerifyConnection checks the chain against
		// the authority the code pins instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			ca, err := pinnedAuthority(cs, pin)
			if err == nil {
				hubCA = ca
			}
			return err
		},
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(hubURL, "/")+EnrollPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("trust: hub URL %q: %w", hubURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("trust: enrol at %s: %w", hubURL, err)
	}
	defer resp.Body.Close()
	var out enrollResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return nil, fmt.Errorf("trust: enrol at %s: hub answered %s without a readable body", hubURL, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("trust: hub %s refused enrolment: %s", hubURL, out.Error)
	}
	leaf, err := parseCertPEM([]byte(out.Certificate), "issued certificate")
	if err != nil {
		return nil, err
	}
	if err := leaf.CheckSignatureFrom(hubCA); err != nil {
		return nil, fmt.Errorf("trust: issued certificate is not signed by the pinned hub authority: %w", err)
	}
	if !publicKeyEqual(leaf, key) {
		return nil, errors.New("trust: issued certificate is not for this box's key")
	}
	if err := saveIdentity(dir, key, leaf, hubCA); err != nil {
		return nil, err
	}
	return LoadIdentity(dir)
}

func publicKeyEqual(cert *x509.Certificate, key *ecdsa.PrivateKey) bool {
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	return ok && pub.Equal(&key.PublicKey)
}

// pinnedAuthority finds, among the certificates the hub sent, the authority with the
// given pin, and checks that the hub's own certificate chains to it.
func pinnedAuthority(cs tls.ConnectionState, pin string) (*x509.Certificate, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, errors.New("hub sent no certificate")
	}
	for _, c := range cs.PeerCertificates[1:] {
		if c.IsCA && pinOf(c) == pin {
			roots := x509.NewCertPool()
			roots.AddCert(c)
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots}); err != nil {
				return nil, fmt.Errorf("hub certificate does not chain to its pinned authority: %w", err)
			}
			return c, nil
		}
	}
	return nil, errors.New("hub's authority does not match the enrolment code: wrong hub, or a mistyped code")
}
