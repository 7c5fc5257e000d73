package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// lifelineStdin runs the binary with stdin, as a script piping a password would.
func lifelineStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestHubUserCommands manages an account with the hub stopped (on its store) and
// running (through its admin socket), as `hub enroll` does, and checks that each
// change is audited and that a sign-in link signs a client in once.
func TestHubUserCommands(t *testing.T) {
	dir := t.TempDir()
	hubAddr, hubStatus, viewer := freePort(t), freePort(t), freePort(t)
	conf := writeFile(t, dir, "hub.toml", fmt.Sprintf("[server]\nlisten = %q\n[viewer]\nlisten = %q\n[status]\nlisten = %q\n", hubAddr, viewer, hubStatus))
	data := filepath.Join(dir, "hub")
	user := func(stdin string, args ...string) (int, string, string) {
		return lifelineStdin(t, stdin, append(append([]string{"hub", "user"}, args...), "--config", conf, "--data", data)...)
	}

	// Stopped hub: on the store. The password comes from stdin, never from argv.
	if code, out, stderr := user("correct horse battery\n", "add", "--user", "dr.li", "--name", "李医生", "--role", "doctor"); code != 0 || !strings.Contains(out, "added dr.li") {
		t.Fatalf("user add (stopped hub): %d %s %s", code, out, stderr)
	}
	if code, _, stderr := user("short\n", "add", "--user", "dr.wang", "--name", "Wang", "--role", "observer"); code == 0 || !strings.Contains(stderr, "at least 10 characters") {
		t.Fatalf("a short password: %d %s", code, stderr)
	}
	if code, _, stderr := user("", "add", "--user", "dr.wang", "--name", "Wang", "--role", "nurse"); code == 0 || !strings.Contains(stderr, `role "nurse"`) {
		t.Fatalf("an unknown role: %d %s", code, stderr)
	}
	if code, _, stderr := user("", "add", "--user", "dr.wang", "--password", "x"); code != 2 {
		t.Fatalf("a password on the command line: %d %s, want usage error 2", code, stderr)
	}

	hub := start(t, "hub", "--config", conf, "--data", data)
	wait.For(t, 20*time.Second, "hub viewer serving", func() bool {
		var st statusBody
		return getJSON(t, "http://"+hubStatus+"/api/v1/status", &st) == 200 && func() bool { s, _ := st.service("viewer-https"); return s == "ready" }()
	})

	// Running hub: through the admin socket.
	if code, out, stderr := user("", "disable", "--user", "dr.li"); code != 0 || !strings.Contains(out, "disabled dr.li") {
		t.Fatalf("user disable (running hub): %d %s %s", code, out, stderr)
	}
	code, out, stderr := user("", "list")
	if code != 0 || !strings.Contains(out, "dr.li") || !strings.Contains(out, "disabled") || strings.Contains(out, "argon2") {
		t.Fatalf("user list: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := user("", "link", "--user", "dr.li"); code == 0 || !strings.Contains(stderr, "disabled") {
		t.Fatalf("a link for a disabled user: %d %s", code, stderr)
	}
	if code, _, stderr := user("", "enable", "--user", "dr.li"); code != 0 {
		t.Fatalf("user enable: %d %s", code, stderr)
	}
	if code, out, stderr := user("a new long password\n", "passwd", "--user", "dr.li"); code != 0 || !strings.Contains(out, "changed") {
		t.Fatalf("user passwd: %d %s %s", code, out, stderr)
	}
	code, out, stderr = user("", "link", "--user", "dr.li")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	url := lines[len(lines)-1]
	if code != 0 || !strings.HasPrefix(url, "https://127.0.0.1:"+strings.Split(viewer, ":")[1]+"/signin/link#") {
		t.Fatalf("user link: %d %q %s", code, out, stderr)
	}

	// The link signs a client in, once.
	token := url[strings.Index(url, "#")+1:]
	// With no hospital certificate configured the viewer presents the hub's own,
	// which this client trusts as the boxes do.
	caPEM, err := os.ReadFile(filepath.Join(data, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	redeem := func() int {
		req, _ := http.NewRequest("POST", "https://"+viewer+"/api/v1/signin/link", strings.NewReader(`{"token":"`+token+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "https://"+viewer)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var who struct{ User string }
		json.NewDecoder(resp.Body).Decode(&who)
		if resp.StatusCode == 200 && who.User != "dr.li" {
			t.Fatalf("the link signed in %q", who.User)
		}
		return resp.StatusCode
	}
	if status := redeem(); status != 200 {
		t.Fatalf("the link: %d", status)
	}
	if status := redeem(); status != http.StatusUnauthorized {
		t.Fatalf("the link a second time: %d", status)
	}
	hub.stop(t)

	trail, _ := os.ReadFile(filepath.Join(data, "audit.log"))
	for _, ev := range []string{"account.added", "account.disabled", "account.enabled", "account.password_changed", "signin.link_issued", `"signin"`, "signin.failed"} {
		if !strings.Contains(string(trail), ev) {
			t.Errorf("audit trail lacks %s:\n%s", ev, trail)
		}
	}
	if !strings.Contains(string(trail), fmt.Sprintf(`"by":"admin socket, uid %d, pid `, os.Getuid())) || !strings.Contains(string(trail), "on the store, uid") {
		t.Errorf("audit trail does not say who changed accounts:\n%s", trail)
	}
}
