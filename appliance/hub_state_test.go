package appliance

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"lifeline/internal/hubstate"
	"lifeline/internal/peers"
	"lifeline/internal/trust"
)

// TestStateConfig checks [state]: a malformed connection string is refused at load,
// naming the key and never repeating the password; a good one loads.
func TestStateConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[state]\npostgres = \"postgres://hub:s3cret@db:port/lifeline\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadHubConfig(bad)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "state.postgres" || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a malformed connection string: %v; want a refusal of state.postgres without the password", err)
	}
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte("[state]\npostgres = \"postgres://lifeline@db.example:5432/lifeline\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := LoadHubConfig(good); err != nil || cfg.State.Postgres == "" {
		t.Fatalf("a good connection string: %+v, %v", cfg.State, err)
	}
}

// TestHubCommandsOnSharedState runs `lifeline hub` commands of two hubs, each with
// its own data directory, against one PostgreSQL database: a code issued through one
// is a device the other lists, a revocation through the other is seen by the first,
// and neither keeps an embedded state file beside it.
func TestHubCommandsOnSharedState(t *testing.T) {
	st := StateSection{Postgres: peers.Postgres(t)}
	a := HubAdmin{DataDir: filepath.Join(t.TempDir(), "hub-a"), State: st, Log: quietLog()}
	b := HubAdmin{DataDir: filepath.Join(t.TempDir(), "hub-b"), State: st, Log: quietLog()}
	code, err := a.Enrol("AMB-0018")
	if err != nil || code.Code == "" {
		t.Fatalf("enrol through hub A: %+v, %v", code, err)
	}
	// Hub B made its own certificate authority: refused, as boxes enrolled at A
	// would be strangers to it. With A's authority copied over, B joins.
	if _, err := b.Devices(); !errors.Is(err, hubstate.ErrOtherAuthority) || !strings.Contains(err.Error(), "ca.key") {
		t.Fatalf("hub B with its own authority: %v, want ErrOtherAuthority naming the files to copy", err)
	}
	copyAuthority(t, a.DataDir, b.DataDir)
	devs, err := b.Devices()
	if err != nil || len(devs) != 1 || devs[0].ID != "AMB-0018" || devs[0].State != "pending" {
		t.Fatalf("devices as hub B lists them: %+v, %v; want AMB-0018 pending", devs, err)
	}
	if err := b.Revoke("AMB-0018"); err != nil {
		t.Fatalf("revoke through hub B: %v", err)
	}
	devs, err = a.Devices()
	if err != nil || len(devs) != 1 || devs[0].State != "revoked" {
		t.Fatalf("devices as hub A lists them after B revoked: %+v, %v", devs, err)
	}
	for _, dir := range []string{a.DataDir, b.DataDir} {
		if _, err := os.Stat(hubStorePath(dir)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s exists (%v): the embedded engine was used beside the shared one", hubStorePath(dir), err)
		}
	}
}

// TestRunningHubOnSharedState runs a hub whose state is in PostgreSQL: a box enrols
// with a code issued by a command beside it, is admitted, and is refused at its next
// request once a command revokes it, as the hub reads the shared state each time.
func TestRunningHubOnSharedState(t *testing.T) {
	st := StateSection{Postgres: peers.Postgres(t)}
	_, cfg, dir := startHub(t, func(c *HubConfig) { c.State = st })
	admin := HubAdmin{DataDir: filepath.Join(dir, "hub"), Lifetime: time.Hour, State: st, Log: quietLog()}
	code, err := admin.Enrol("AMB-0019")
	if err != nil {
		t.Fatal(err)
	}
	id, err := trust.Enroll(context.Background(), "https://"+cfg.Server.Listen, code.Code, filepath.Join(dir, "box"))
	if err != nil {
		t.Fatalf("enrol with a hub on PostgreSQL: %v", err)
	}
	box := &http.Client{Transport: &http3.Transport{TLSClientConfig: id.ClientTLS()}, Timeout: 5 * time.Second}
	hello := func() (int, string) {
		resp, err := box.Get("https://" + cfg.Server.Listen + "/api/v1/hello")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := hello(); status != http.StatusOK || !strings.Contains(body, "AMB-0019") {
		t.Fatalf("enrolled box: %d %s", status, body)
	}
	if err := admin.Revoke("AMB-0019"); err != nil {
		t.Fatal(err)
	}
	if status, body := hello(); status != http.StatusForbidden || !strings.Contains(body, "revoked") {
		t.Fatalf("box revoked in the shared state: %d %s", status, body)
	}
	if _, err := os.Stat(hubStorePath(admin.DataDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (%v): the running hub used the embedded engine", hubStorePath(admin.DataDir), err)
	}
}

// copyAuthority gives the hub in to the certificate authority and the viewer-token
// key of the hub in from, as an operator setting up a second hub does.
func copyAuthority(t testing.TB, from, to string) {
	t.Helper()
	if err := os.MkdirAll(hubCADir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ca/ca.key", "ca/ca.crt", "viewer-token.key"} {
		data, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBoardSharedByHubs runs two hubs on one PostgreSQL database: a box reporting to
// hub A is on hub B's board too, named with the hub it reports to, with its position.
func TestBoardSharedByHubs(t *testing.T) {
	st := StateSection{Postgres: peers.Postgres(t)}
	dir := t.TempDir()
	hubA, cfgA := startHubIn(t, filepath.Join(dir, "a"), func(c *HubConfig) { c.State = st })
	copyAuthority(t, filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	hubB, _ := startHubIn(t, filepath.Join(dir, "b"), func(c *HubConfig) { c.State = st })
	code, err := hubA.devices.NewCode(context.Background(), "AMB-BOARD", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := trust.Enroll(context.Background(), "https://"+cfgA.Server.Listen, code, filepath.Join(dir, "box"))
	if err != nil {
		t.Fatal(err)
	}
	box := &http.Client{Transport: &http3.Transport{TLSClientConfig: id.ClientTLS()}, Timeout: 5 * time.Second}
	report := `{"time":"2026-03-01T08:00:00Z","fix":"fixed","position":{"lat":31.23,"lon":121.47,"datum":"WGS-84","time":"2026-03-01T08:00:00Z","satellites":9},"speed_kmh":40,"mission":{"state":"transporting","since":"2026-03-01T07:50:00Z"}}`
	resp, err := box.Post("https://"+cfgA.Server.Listen+BoxReportPath, "application/json", strings.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("report to hub A: %s", resp.Status)
	}
	for _, h := range []*Hub{hubA, hubB} {
		boxes, err := h.Boxes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(boxes) != 1 || boxes[0].Device != "AMB-BOARD" || boxes[0].Hub != hubA.hubName() ||
			boxes[0].Position == nil || boxes[0].Position.Lat != 31.23 || boxes[0].Mission.State != "transporting" {
			t.Fatalf("the board of hub %s: %+v, want AMB-BOARD at hub %s with its position", h.hubName(), boxes, hubA.hubName())
		}
	}
	if hubA.hubName() == hubB.hubName() {
		t.Fatalf("both hubs are named %s", hubA.hubName())
	}
}
