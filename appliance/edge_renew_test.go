package appliance

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"lifeline/internal/service"
	"lifeline/internal/trust"
	"lifeline/internal/wait"
)

// renewalRig is a running hub whose authority issues short-lived certificates and a
// box enrolled with it, both on loopback, as the renewal tests need them.
type renewalRig struct {
	hub     *Hub
	hubCfg  HubConfig
	hubDir  string
	edge    *Edge
	edgeCfg EdgeConfig
	boxDir  string
	first   *trust.Identity // the identity the box enrolled with
}

// startRenewalRig starts a hub issuing certificates with life, enrols box AMB-0700 and
// starts it. startHub cannot be used: the lifetimes must be set before the hub makes
// its server certificate in Run.
func startRenewalRig(t *testing.T, life trust.Lifetimes) *renewalRig {
	t.Helper()
	dir := t.TempDir()
	d := &demo{hub: DefaultHubConfig(), edge: DefaultEdgeConfig()}
	if err := d.pickPorts(); err != nil {
		t.Fatal(err)
	}
	r := &renewalRig{hubCfg: d.hub, edgeCfg: d.edge, hubDir: filepath.Join(dir, "hub"), boxDir: filepath.Join(dir, "box")}
	hub, err := OpenHub(r.hubCfg, r.hubDir, "test", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	hub.auth.SetLifetimes(life)
	r.hub = hub
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	go func() { errc <- hub.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-errc; err != nil {
				t.Error(err)
			}
		}
	})
	if err := waitReady(ctx, errc, func() bool { return serviceState(hub.Status(), "hub-server") == service.Ready }); err != nil {
		t.Fatal(err)
	}
	code, err := HubAdmin{DataDir: r.hubDir, Lifetime: time.Hour, Log: quietLog()}.Enrol("AMB-0700")
	if err != nil {
		t.Fatal(err)
	}
	if r.first, err = EdgeEnrol(ctx, r.hubURL(), code.Code, r.boxDir); err != nil {
		t.Fatal(err)
	}
	r.edgeCfg.Hub.URL = r.hubURL()
	r.edgeCfg.Stream.Enabled = false // no camera here, and the stream is not what renews
	if r.edge, err = OpenEdge(r.edgeCfg, r.boxDir, "test", quietLog()); err != nil {
		t.Fatal(err)
	}
	go func() { errc <- r.edge.Run(ctx) }()
	if err := waitReady(ctx, errc, func() bool { return serviceState(r.edge.Status(), "certificate-renewal") != "" }); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *renewalRig) hubURL() string { return "https://" + r.hubCfg.Server.Listen }

// hello asks the hub's device-only endpoint with client and returns the status, the
// body and the serial of the hub's server certificate.
func hello(t *testing.T, client *http.Client, hubURL string) (int, string, string) {
	t.Helper()
	resp, err := client.Get(hubURL + "/api/v1/hello")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.TLS.PeerCertificates[0].SerialNumber.Text(16)
}

func tlsClient(conf *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
}

// metric returns the exposition lines of /metrics at addr that contain substr.
func metric(t *testing.T, addr, substr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return grepLines(string(body), substr)
}

// TestBoxRenewsItsCertificateWithARunningHub runs a hub that issues device certificates
// for eight seconds and a box enrolled with it: the box's service renews before the
// certificate runs out, the box keeps talking to the hub with the new certificate (over
// a TLS configuration made before the renewal, as its long-lived parts have), an
// HTTP/3 connection made before the renewal is still served, the hub refuses the old
// certificate on a new connection as superseded and audited the renewal, the box's status and
// /metrics show the expiry, an operator can force a renewal, and once revoked the box
// cannot renew.
func TestBoxRenewsItsCertificateWithARunningHub(t *testing.T) {
	// 24 s: renewed with 8 s left, and again 16 s after that, when the first certificate
	// is two generations old and its connections are no longer served: the checks below
	// need the seconds between on a loaded CI machine.
	r := startRenewalRig(t, trust.Lifetimes{Device: 24 * time.Second})
	firstSerial := r.first.Leaf.SerialNumber.Text(16)
	// A connection made before the renewal, as the forwarder's HTTP/3 one is.
	uploads := &http.Client{Transport: &http3.Transport{TLSClientConfig: r.first.ClientTLS()}, Timeout: 5 * time.Second}
	if status, _, _ := hello(t, uploads, r.hubURL()); status != http.StatusOK {
		t.Fatalf("box over HTTP/3 before renewal: %d", status)
	}
	current := func() *trust.Identity {
		id, err := trust.LoadIdentity(IdentityDir(r.boxDir))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	wait.For(t, 40*time.Second, "the box to renew its certificate", func() bool {
		return current().Leaf.SerialNumber.Text(16) != firstSerial
	})

	if status, body, _ := hello(t, uploads, r.hubURL()); status != http.StatusOK {
		t.Fatalf("the HTTP/3 connection made before the renewal: %d %s", status, body)
	}
	if status, body, _ := hello(t, tlsClient(r.first.ClientTLS()), r.hubURL()); status != http.StatusOK || !strings.Contains(body, "AMB-0700") {
		t.Fatalf("box after renewal: %d %s", status, body)
	}
	old := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{r.first.Cert}, RootCAs: r.hub.auth.Pool()}
	if status, body, _ := hello(t, tlsClient(old), r.hubURL()); status != http.StatusForbidden || !strings.Contains(body, "replaced") {
		t.Fatalf("the replaced certificate: %d %s", status, body)
	}
	auditLog, _ := os.ReadFile(filepath.Join(r.hubDir, "audit.log"))
	if !strings.Contains(string(auditLog), `"event":"renew.accepted"`) || !strings.Contains(string(auditLog), `"old_serial":"`+firstSerial+`"`) {
		t.Fatalf("renewal not in the audit log:\n%s", auditLog)
	}
	wait.For(t, 10*time.Second, "the box's certificate self-test", func() bool {
		for _, c := range r.edge.Status().SelfTest {
			if c.Name == "certificate" && strings.Contains(c.Detail, "box certificate") {
				return true
			}
		}
		return false
	})
	if m := metric(t, r.edgeCfg.HTTP.Listen, `lifeline_certificate_expiry_seconds{cert="device"}`); m == "" {
		t.Fatal("the box's /metrics has no device certificate expiry")
	}
	if m := metric(t, r.hubCfg.Status.Listen, "lifeline_certificate_expiry_seconds{"); !strings.Contains(m, `cert="hub-ca"`) || !strings.Contains(m, `cert="hub-server"`) {
		t.Fatalf("the hub's /metrics: %q", m)
	}

	before := current().Leaf.SerialNumber.Text(16)
	forced := forceRenewal(t, r.edgeCfg.HTTP.Listen)
	if forced.Device != "AMB-0700" || forced.Serial == before {
		t.Fatalf("forced renewal answered %+v", forced)
	}

	if err := (HubAdmin{DataDir: r.hubDir, Log: quietLog()}).Revoke("AMB-0700"); err != nil {
		t.Fatal(err)
	}
	resp := postJSON(t, "http://"+r.edgeCfg.HTTP.Listen+CertificateRenewPath)
	if resp.status != http.StatusBadGateway || !strings.Contains(resp.body, "revoked") {
		t.Fatalf("renewal of a revoked box: %d %s", resp.status, resp.body)
	}
	auditLog, _ = os.ReadFile(filepath.Join(r.hubDir, "audit.log"))
	if !strings.Contains(string(auditLog), `"event":"renew.refused"`) {
		t.Fatalf("refused renewal not in the audit log:\n%s", auditLog)
	}
}

type answer struct {
	status int
	body   string
}

func postJSON(t *testing.T, url string) answer {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(body)}
}

func forceRenewal(t *testing.T, boxAddr string) RenewAnswer {
	t.Helper()
	resp, err := http.Post("http://"+boxAddr+CertificateRenewPath, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans RenewAnswer
	if err := decodeJSON(resp, &ans); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("forced renewal: %s %v", resp.Status, err)
	}
	return ans
}

// TestHubServerCertificateRollsWhileBoxConnected runs a hub whose server certificate
// lives six seconds: the hub renews it while running, a box's connection made before
// keeps working, new connections get the new certificate and the box is admitted on
// them, and the hub's status names the certificate.
func TestHubServerCertificateRollsWhileBoxConnected(t *testing.T) {
	// 20 s: the hub renews with a third of it left, which leaves a loaded CI machine
	// seconds to spare before the old certificate expires.
	r := startRenewalRig(t, trust.Lifetimes{Server: 20 * time.Second})
	kept := tlsClient(r.first.ClientTLS())
	status, _, firstServer := hello(t, kept, r.hubURL())
	if status != http.StatusOK {
		t.Fatalf("box before the roll: %d", status)
	}
	var rolled string
	wait.For(t, 40*time.Second, "a new connection to get a new server certificate", func() bool {
		resp, err := tlsClient(r.first.ClientTLS()).Get(r.hubURL() + "/api/v1/hello")
		if err != nil {
			t.Logf("hello while waiting for the roll: %v", err)
			return false
		}
		resp.Body.Close()
		rolled = resp.TLS.PeerCertificates[0].SerialNumber.Text(16)
		return resp.StatusCode == http.StatusOK && rolled != firstServer
	})
	if status, _, serial := hello(t, kept, r.hubURL()); status != http.StatusOK || serial != firstServer {
		t.Fatalf("the connection made before the roll: %d, server certificate %s", status, serial)
	}
	if status, body, _ := hello(t, tlsClient(r.first.ClientTLS()), r.hubURL()); status != http.StatusOK || !strings.Contains(body, "AMB-0700") {
		t.Fatalf("box on a new connection after the roll to %s: %d %s", rolled, status, body)
	}
	wait.For(t, 10*time.Second, "the hub's certificates service to name the server certificate", func() bool {
		for _, s := range r.hub.Status().Services {
			if s.Name == "certificates" && strings.Contains(s.Detail, "hub-server certificate") && strings.Contains(s.Detail, "hub-ca certificate") {
				return true
			}
		}
		return false
	})
	auditLog, _ := os.ReadFile(filepath.Join(r.hubDir, "audit.log"))
	if !strings.Contains(string(auditLog), `"event":"certificate.renewed"`) || !strings.Contains(string(auditLog), `"cert":"hub-server"`) {
		t.Fatalf("server certificate renewal not in the audit log:\n%s", auditLog)
	}
}
