package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"lifeline/internal/audit/audittest"
	"lifeline/internal/trust"
)

// TestHubMutualTLSOverHTTP3AndTCP enrols a box with a running hub and checks that both
// of the hub's transports — HTTP/3 over QUIC, which uploads use, and HTTPS over TCP —
// admit it with its certificate, and refuse it, with an audit line, once revoked.
func TestHubMutualTLSOverHTTP3AndTCP(t *testing.T) {
	_, cfg, dir := startHub(t, nil)
	ctx := context.Background()
	admin := HubAdmin{DataDir: filepath.Join(dir, "hub"), Lifetime: time.Hour, Log: quietLog()}
	code, err := admin.Enrol("AMB-0009")
	if err != nil {
		t.Fatal(err)
	}
	id, err := trust.Enroll(ctx, "https://"+cfg.Server.Listen, code.Code, filepath.Join(dir, "box"))
	if err != nil {
		t.Fatal(err)
	}

	h3 := &http.Client{Transport: &http3.Transport{TLSClientConfig: id.ClientTLS()}, Timeout: 5 * time.Second}
	tcp := &http.Client{Transport: &http.Transport{TLSClientConfig: id.ClientTLS()}, Timeout: 5 * time.Second}
	hello := func(c *http.Client) (int, string, string) {
		resp, err := c.Get("https://" + cfg.Server.Listen + "/api/v1/hello")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Proto, string(body)
	}
	if status, proto, body := hello(h3); status != 200 || proto != "HTTP/3.0" || !strings.Contains(body, "AMB-0009") {
		t.Fatalf("HTTP/3: %d %s %s", status, proto, body)
	}
	if status, _, body := hello(tcp); status != 200 || !strings.Contains(body, "AMB-0009") {
		t.Fatalf("HTTPS: %d %s", status, body)
	}
	// The public side is the transfer's server, which counts QUIC connections.
	metrics, err := http.Get("http://" + cfg.Status.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !strings.Contains(string(exposition), "lifeline_hub_quic_connections_total 1\n") {
		t.Fatalf("after one HTTP/3 connection /metrics says:\n%s", grepLines(string(exposition), "lifeline_hub_quic"))
	}
	if err := admin.Revoke("AMB-0009"); err != nil {
		t.Fatal(err)
	}
	if status, _, body := hello(h3); status != http.StatusForbidden || !strings.Contains(body, "revoked") {
		t.Fatalf("revoked box over HTTP/3: %d %s", status, body)
	}
	// Without a certificate the hub serves enrolment only.
	anon := &http.Client{Transport: &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
	resp, err := anon.Get("https://" + cfg.Server.Listen + "/api/v1/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("anonymous: %d", resp.StatusCode)
	}
	logData, _ := os.ReadFile(filepath.Join(dir, "hub", "audit.log"))
	if strings.Count(string(logData), `"device.refused"`) != 2 {
		t.Fatalf("want 2 refusals audited:\n%s", logData)
	}
	// The code and the revocation went through the admin socket, and the kernel told
	// the hub who asked.
	asker := fmt.Sprintf(`"by":"admin socket, uid %d, pid %d"`, os.Getuid(), os.Getpid())
	if strings.Count(string(logData), asker) != 2 {
		t.Fatalf("want the code and the revocation audited with %s:\n%s", asker, logData)
	}
}

// startHub runs a hub on free loopback ports, its state in dir/hub, until the test
// ends; configure may change its configuration first.
func startHub(t testing.TB, configure func(*HubConfig)) (*Hub, HubConfig, string) {
	t.Helper()
	dir := t.TempDir()
	hub, cfg := startHubIn(t, filepath.Join(dir, "hub"), configure)
	return hub, cfg, dir
}

// startHubIn is startHub with the hub's data directory chosen by the caller, who may
// have put state there first (a certificate authority shared with another hub).
func startHubIn(t testing.TB, dataDir string, configure func(*HubConfig)) (*Hub, HubConfig) {
	t.Helper()
	hub, cfg, _ := startHubStoppable(t, dataDir, configure)
	return hub, cfg
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// grepLines returns the lines of text that contain substr.
func grepLines(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestCodesAndRevocationsFailClosed checks that no enrolment code is issued and no box
// revoked when the audit log cannot record it.
func TestCodesAndRevocationsFailClosed(t *testing.T) {
	dir := t.TempDir()
	store, err := openHubState(dir, StateSection{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	auth, err := trust.OpenAuthority(hubCADir(dir))
	if err != nil {
		t.Fatal(err)
	}
	reg, rec, ctx := trust.NewRegistry(store, auth), &audittest.Recorder{}, context.Background()
	if _, err := issueCode(ctx, reg, rec, "AMB-0001", time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	rec.FailWith(errors.New("no space left on device"))
	if _, err := issueCode(ctx, reg, rec, "AMB-0002", time.Hour, "test"); err == nil || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("code issued without an audit line: %v", err)
	}
	if err := revokeDevice(ctx, reg, rec, "AMB-0001", "test"); err == nil {
		t.Fatal("device revoked without an audit line")
	}
	devs, _ := reg.Devices(ctx)
	if len(devs) != 1 || devs[0].ID != "AMB-0001" || devs[0].State != trust.StatePending {
		t.Fatalf("devices after refused actions: %+v", devs)
	}
	if rec.Count("enrol.code_issued") != 1 || rec.Count("device.revoked") != 0 {
		t.Fatalf("audit: %v", rec.Events())
	}
}
