package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lifeline/internal/peers"
	"lifeline/internal/trust"
	"lifeline/internal/wait"
)

// sharedHub is one of several hub processes on one PostgreSQL database.
type sharedHub struct {
	name         string
	conf, data   string
	addr, status string // server.listen (boxes), status.listen
	proc         *proc
}

// url is the hub's address for boxes.
func (h *sharedHub) url() string { return "https://" + h.addr }

// cmd runs `lifeline hub ARGS` against this hub's config and data directory.
func (h *sharedHub) cmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return lifelineStdin(t, stdin, append(append([]string{"hub"}, args...), "--config", h.conf, "--data", h.data)...)
}

// enrol issues a code for device through this hub's command and returns it.
func (h *sharedHub) enrol(t *testing.T, device string) string {
	t.Helper()
	code, out, stderr := h.cmd(t, "", "enroll", "--device", device)
	if code != 0 {
		t.Fatalf("hub %s: enroll %s: %d %s", h.name, device, code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// newSharedHub writes the config of a hub on the database dsn, with extra appended
// (e.g. a [pacs] section).
func newSharedHub(t *testing.T, dir, name, dsn, extra string) *sharedHub {
	h := &sharedHub{name: name, data: filepath.Join(dir, name), addr: freePort(t), status: freePort(t)}
	h.conf = writeFile(t, dir, name+".toml", fmt.Sprintf("[server]\nlisten = %q\n[status]\nlisten = %q\n[state]\npostgres = %q\n%s", h.addr, h.status, dsn, extra))
	return h
}

// startSharedHubs starts the hubs, the first having made the certificate authority
// (by a command) that the others are given, and waits until each is ready on the
// shared state.
func startSharedHubs(t *testing.T, hubs ...*sharedHub) {
	t.Helper()
	for _, h := range hubs[1:] {
		copyCA(t, hubs[0].data, h.data)
	}
	for _, h := range hubs {
		h.proc = start(t, "hub", "--config", h.conf, "--data", h.data)
	}
	for _, h := range hubs {
		wait.For(t, 20*time.Second, "hub "+h.name+" ready on the shared state", func() bool {
			shared, overall := h.sharedState(t)
			return shared == "ready" && overall == "ready"
		})
	}
}

// sharedState reads a hub's /api/v1/status: the shared-state service's state and
// the overall one.
func (h *sharedHub) sharedState(t *testing.T) (shared, overall string) {
	var st statusBody
	getJSON(t, "http://"+h.status+"/api/v1/status", &st)
	shared, _ = st.service("shared-state")
	return shared, string(st.Overall)
}

// box is an enrolled box's client: its own certificate, one kept-alive connection
// per hub, so that "the next request" is a request on the connection it already has.
type box struct {
	device string
	client *http.Client
}

func enrolledBox(t *testing.T, dir, device string) box {
	t.Helper()
	id, err := trust.LoadIdentity(filepath.Join(dir, "identity"))
	if err != nil {
		t.Fatalf("%s's identity: %v", device, err)
	}
	tr := &http.Transport{TLSClientConfig: id.ClientTLS(), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return box{device: device, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// hello makes the box's authenticated request to hub and returns its status and body.
func (b box) hello(t *testing.T, hub *sharedHub) (int, string) {
	t.Helper()
	resp, err := b.client.Get(hub.url() + "/api/v1/hello")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// createUpload asks hub to create the upload of a small instance (dicom/TRANSFER.md)
// and returns the answer's status and body.
func (b box) createUpload(t *testing.T, hub *sharedHub, sop string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, hub.url()+"/api/v1/uploads", nil)
	req.Header.Set("Upload-Length", "1024")
	req.Header.Set("Repr-Digest", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:")
	req.Header.Set("Dicom-SOP-Instance-UID", sop)
	req.Header.Set("Dicom-Study-Instance-UID", "1.2.826.0.1.3680043.10.1818.9")
	req.Header.Set("Upload-Complete", "?0")
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestTwoHubsOnePostgres runs two hub processes, each with its own data directory and
// the same certificate authority, on one PostgreSQL database, with the `lifeline hub`
// commands run beside either: a hub with an authority of its own is refused; a code
// issued at one hub enrols a box at the other and is refused at the second use
// whichever hub sees it; an account added at one hub is listed at the other; a box
// revoked at A is refused (403, audited) at B on its very next request over the
// connection it already had, while another box still passes; a box whose first hub
// address is out of reach moves on to hub B; the shared audit trail
// holds the events of both hubs and their commands. Then PostgreSQL stops: both hubs
// stay up, say they are degraded in /api/v1/status and /healthz, admit and refuse the
// boxes they knew by their last known state, refuse commands and uploads that need
// the shared state, and recover by themselves when it starts again.
func TestTwoHubsOnePostgres(t *testing.T) {
	pg := peers.PostgresCluster(t)
	dir := t.TempDir()
	a, b := newSharedHub(t, dir, "hub-a", pg.DSN, ""), newSharedHub(t, dir, "hub-b", pg.DSN, "")

	// Hub A's first command makes its certificate authority and records it in the
	// shared state; B, with an authority of its own, is refused and told what to copy.
	code1 := a.enrol(t, "AMB-0001")
	if code, _, stderr := b.cmd(t, "", "enroll", "--device", "AMB-0002"); code == 0 || !strings.Contains(stderr, "ca.key") {
		t.Fatalf("hub B with an authority of its own: exit %d, %s; want a refusal naming ca.key", code, stderr)
	}
	startSharedHubs(t, a, b)

	// A code issued at B (its command, beside the running hub) enrols at A; A's code
	// enrols at A and is then refused at B.
	code2 := b.enrol(t, "AMB-0002")
	box1, box2 := filepath.Join(dir, "box1"), filepath.Join(dir, "box2")
	if code, out, stderr := lifeline(t, "edge", "enroll", "--hub", a.url(), "--code", code1, "--data", box1); code != 0 || !strings.Contains(out, "AMB-0001") {
		t.Fatalf("enrol AMB-0001 at A with A's code: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := lifeline(t, "edge", "enroll", "--hub", b.url(), "--code", code1, "--data", filepath.Join(dir, "again")); code == 0 || !strings.Contains(stderr, "already used") {
		t.Fatalf("A's used code at B: %d %s, want it refused as already used", code, stderr)
	}
	if code, out, stderr := lifeline(t, "edge", "enroll", "--hub", a.url(), "--code", code2, "--data", box2); code != 0 || !strings.Contains(out, "AMB-0002") {
		t.Fatalf("enrol AMB-0002 at A with B's code: %d %s %s", code, out, stderr)
	}

	// Accounts: added through B, listed through A.
	if code, out, stderr := b.cmd(t, "correct horse battery\n", "user", "add", "--user", "dr.li", "--name", "李医生", "--role", "doctor"); code != 0 || !strings.Contains(out, "added dr.li") {
		t.Fatalf("user add at B: %d %s %s", code, out, stderr)
	}
	if code, out, stderr := a.cmd(t, "", "user", "list"); code != 0 || !strings.Contains(out, "dr.li") || !strings.Contains(out, "李医生") {
		t.Fatalf("user list at A: %d %s %s; want dr.li", code, out, stderr)
	}

	// Both boxes are admitted by both hubs; AMB-0001 revoked through A is refused
	// by B at its next request on the connection it already had.
	amb1, amb2 := enrolledBox(t, box1, "AMB-0001"), enrolledBox(t, box2, "AMB-0002")
	for _, bx := range []box{amb1, amb2} {
		for _, h := range []*sharedHub{a, b} {
			if status, body := bx.hello(t, h); status != http.StatusOK || !strings.Contains(body, bx.device) {
				t.Fatalf("%s at hub %s: %d %s", bx.device, h.name, status, body)
			}
		}
	}
	if code, _, stderr := a.cmd(t, "", "revoke", "--device", "AMB-0001"); code != 0 {
		t.Fatalf("revoke AMB-0001 through A: %d %s", code, stderr)
	}
	for _, h := range []*sharedHub{b, a} {
		if status, body := amb1.hello(t, h); status != http.StatusForbidden || !strings.Contains(body, "revoked") {
			t.Fatalf("AMB-0001 at hub %s after A revoked it: %d %s, want 403 naming the revocation", h.name, status, body)
		}
	}
	if status, _ := amb2.hello(t, b); status != http.StatusOK {
		t.Fatalf("AMB-0002 at B after another box was revoked: %d", status)
	}
	wantAuditLine(t, filepath.Join(b.data, "audit.log"), `"device.refused"`, "AMB-0001", "revoked")

	// A box whose first hub address is out of reach moves on to the next, hub B.
	edgeHTTP, dead := freePort(t), freePort(t)
	edgeConf := writeFile(t, dir, "edge.toml", fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = \"https://%s\"\nfallback_urls = [%q]\n[dicom]\nlisten = %q\n",
		edgeHTTP, dead, b.url(), freePort(t)))
	edge := start(t, "edge", "--config", edgeConf, "--data", box2)
	wait.For(t, 20*time.Second, "the box on hub B, its first address being out of reach", func() bool {
		var es statusBody
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
		st, detail := es.service("hub-link")
		return st == "ready" && strings.Contains(detail, b.addr)
	})
	edge.stop(t)
	trail := sharedTrail(t, pg.DSN)
	for _, ev := range []string{"enrol.code_issued", "enrol.accepted", "enrol.refused", "account.added", "device.revoked", "device.refused", "device.connected"} {
		if !slices.Contains(trail, ev) {
			t.Errorf("the shared audit trail lacks %s: %v", ev, trail)
		}
	}

	hubsWithoutPostgres(t, pg, amb2, amb1, a, b)
}

// hubsWithoutPostgres stops the database under running hubs and starts it again; bx
// is a box the hubs admit, revoked one they refuse.
func hubsWithoutPostgres(t *testing.T, pg *peers.PGCluster, bx, revoked box, hubs ...*sharedHub) {
	pg.Stop(t)
	for _, h := range hubs {
		wait.For(t, 20*time.Second, "hub "+h.name+" degraded without PostgreSQL", func() bool {
			shared, overall := h.sharedState(t)
			return shared == "degraded" && overall == "degraded"
		})
		if body := fetchText(t, "http://"+h.status+"/healthz"); !strings.HasPrefix(body, "ok\n") || !strings.Contains(body, "shared state: UNREACHABLE") {
			t.Fatalf("hub %s's /healthz without PostgreSQL: %q", h.name, body)
		}
	}
	// Boxes the hubs knew keep their last known state: AMB-0002 is admitted (its
	// live streams go on), the revoked AMB-0001 stays refused.
	for _, h := range hubs {
		if status, body := bx.hello(t, h); status != http.StatusOK {
			t.Fatalf("%s at hub %s without PostgreSQL: %d %s, want it admitted by its last known state", bx.device, h.name, status, body)
		}
		if status, body := revoked.hello(t, h); status != http.StatusForbidden || !strings.Contains(body, "revoked") {
			t.Fatalf("revoked %s at hub %s without PostgreSQL: %d %s, want 403", revoked.device, h.name, status, body)
		}
	}
	if code, _, stderr := hubs[0].cmd(t, "", "revoke", "--device", bx.device); code == 0 {
		t.Fatalf("a revocation without the shared state succeeded: %s", stderr)
	}
	// An upload cannot start without the shared state: the hub says so with a 5xx,
	// which the box's forwarder retries.
	if status, body := bx.createUpload(t, hubs[1], "1.2.826.0.1.3680043.10.1818.9.1"); status < 500 {
		t.Fatalf("an upload created without the shared state: %d %s, want a 5xx", status, body)
	}
	for _, h := range hubs {
		if err := h.proc.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("hub %s died without PostgreSQL: %v\n%s", h.name, err, h.proc.stderr)
		}
	}

	pg.Start(t)
	for _, h := range hubs {
		wait.For(t, 30*time.Second, "hub "+h.name+" ready again once PostgreSQL is back", func() bool {
			shared, overall := h.sharedState(t)
			return shared == "ready" && overall == "ready"
		})
		if body := fetchText(t, "http://"+h.status+"/healthz"); !strings.Contains(body, "shared state: reachable") {
			t.Fatalf("hub %s's /healthz once PostgreSQL is back: %q", h.name, body)
		}
		if status, body := bx.hello(t, h); status != http.StatusOK {
			t.Fatalf("%s at hub %s once PostgreSQL is back: %d %s", bx.device, h.name, status, body)
		}
		if status, body := bx.createUpload(t, h, "1.2.826.0.1.3680043.10.1818.9.2"); status != http.StatusCreated && status != http.StatusOK {
			t.Fatalf("an upload at hub %s once PostgreSQL is back: %d %s", h.name, status, body)
		}
		wantAuditLine(t, filepath.Join(h.data, "audit.log"), `"hub.shared_state_lost"`)
		wantAuditLine(t, filepath.Join(h.data, "audit.log"), `"hub.shared_state_back"`)
	}
	if trail := sharedTrail(t, pg.DSN); !slices.Contains(trail, "hub.shared_state_back") {
		t.Errorf("the shared audit trail lacks the hubs' return: %v", trail)
	}
}

// copyCA gives the hub in to the certificate authority and the viewer-token key of
// the hub in from, as an operator setting up a second hub does (docs/multi-hub.md).
func copyCA(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(to, "ca"), 0o700); err != nil {
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

// wantAuditLine fails unless a line of the audit file holds every one of want.
func wantAuditLine(t *testing.T, path string, want ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		found := true
		for _, w := range want {
			found = found && strings.Contains(line, w)
		}
		if found {
			return
		}
	}
	t.Errorf("%s has no line with all of %q:\n%s", path, want, data)
}

// sharedTrail returns the events of the shared audit trail in its order.
func sharedTrail(t *testing.T, dsn string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("read the shared audit trail: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT event FROM audit_trail ORDER BY seq`)
	if err != nil {
		t.Fatalf("read the shared audit trail: %v", err)
	}
	events, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("read the shared audit trail: %v", err)
	}
	return events
}

// TestRevocationAtOneHubEndsLiveSessionAtAnother: a box publishes its live stream
// (WHIP) to hub B; a viewer at hub A is sent to B (307); revoked
// through hub A's command, its session at B, which carries media without further
// requests, is ended by B within a few seconds, audited there, and the box cannot
// publish again.
func TestRevocationAtOneHubEndsLiveSessionAtAnother(t *testing.T) {
	pg := peers.PostgresCluster(t)
	dir := t.TempDir()
	a, b := newSharedHub(t, dir, "hub-a", pg.DSN, ""), newSharedHub(t, dir, "hub-b", pg.DSN, "")
	code := a.enrol(t, "AMB-LIVE")
	startSharedHubs(t, a, b)
	edgeHTTP := freePort(t)
	conf := writeFile(t, dir, "edge.toml", fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = %q\n[dicom]\nlisten = %q\n[[camera]]\nurl = \"clip:\"\n",
		edgeHTTP, b.url(), freePort(t)))
	data := filepath.Join(dir, "box")
	if code, _, stderr := lifeline(t, "edge", "enroll", "--config", conf, "--data", data, "--code", code); code != 0 {
		t.Fatalf("enrol the box at B: %d %s", code, stderr)
	}
	start(t, "edge", "--config", conf, "--data", data)
	liveStream := func() (string, string) {
		var es statusBody
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
		return es.service("live-stream")
	}
	wait.For(t, 60*time.Second, "the box's live stream connected to hub B", func() bool {
		st, _ := liveStream()
		return st == "ready"
	})

	// A viewer at hub A is sent to hub B.
	status, out, stderr := a.cmd(t, "", "viewer-token", "--device", "AMB-LIVE")
	if status != 0 {
		t.Fatalf("viewer-token at A: %d %s", status, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	_, bPort, _ := net.SplitHostPort(b.addr)
	var answer string
	defer func() {
		if t.Failed() {
			t.Logf("hub A's last answer: %s; the board: %v", answer, sharedBoard(t, a))
		}
	}()
	wait.For(t, 20*time.Second, "hub A sending the viewer to hub B", func() bool {
		var status int
		status, answer = whepAt(t, a, "AMB-LIVE", token)
		return status == http.StatusTemporaryRedirect && strings.Contains(answer, "publishes its live stream to hub") && strings.Contains(answer, ":"+bPort)
	})
	t.Logf("hub A answers: %s", strings.TrimSpace(answer))

	if code, _, stderr := a.cmd(t, "", "revoke", "--device", "AMB-LIVE"); code != 0 {
		t.Fatalf("revoke through A: %d %s", code, stderr)
	}
	wait.For(t, 15*time.Second, "hub B ending the revoked box's live session", func() bool {
		data, _ := os.ReadFile(filepath.Join(b.data, "audit.log"))
		return strings.Contains(string(data), `"stream.revoked"`) && strings.Contains(string(data), "AMB-LIVE")
	})
	// The box's attempt to publish again is refused.
	var detail string
	wait.For(t, 30*time.Second, "the box's live stream refused by hub B", func() bool {
		var st string
		st, detail = liveStream()
		return st != "ready" && strings.Contains(detail, "403") && strings.Contains(detail, "revoked")
	})
	t.Logf("the box says: %s", detail)
	if !slices.Contains(sharedTrail(t, pg.DSN), "stream.revoked") {
		t.Error("the shared audit trail lacks the ended session")
	}
}

// whepAt offers to watch device at hub h's viewer side (server.listen + 1) with a
// viewer token, trusting the hubs' authority, and returns the answer's status and
// body, a redirect not followed.
func whepAt(t *testing.T, h *sharedHub, device, token string) (int, string) {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(h.data, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	host, port, _ := net.SplitHostPort(h.addr)
	p, _ := strconv.Atoi(port)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, "https://"+net.JoinHostPort(host, strconv.Itoa(p+1))+"/whep/"+device, strings.NewReader("v=0\r\n"))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// sharedBoard reads hub h's board on its status listener.
func sharedBoard(t *testing.T, h *sharedHub) []map[string]any {
	var boxes []map[string]any
	getJSON(t, "http://"+h.status+"/api/v1/boxes", &boxes)
	return boxes
}
