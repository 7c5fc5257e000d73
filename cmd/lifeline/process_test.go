package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lifeline/internal/peers"
	"lifeline/internal/proclog"
	"lifeline/internal/wait"
)

// These tests run the real binary as separate processes, as an operator would.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lifeline-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "lifeline")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building lifeline:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lifeline runs the binary to completion and returns its exit status and output.
func lifeline(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// freePort returns a loopback port free for both TCP and UDP (the hub needs both),
// with the two ports above it free too and never handed out by freePort in this test
// process: a hub whose viewer and media ports default to server.listen + 1 and + 2
// must not find them taken by another test's process.
func freePort(t *testing.T) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if port > 65533 || portsGiven[port] || portsGiven[port+1] || portsGiven[port+2] {
			continue
		}
		ok := true
		for p := port; p <= port+2 && ok; p++ {
			ok = portFree(fmt.Sprintf("127.0.0.1:%d", p))
		}
		if ok {
			portsGiven[port], portsGiven[port+1], portsGiven[port+2] = true, true, true
			return fmt.Sprintf("127.0.0.1:%d", port)
		}
	}
	t.Fatal("no free port")
	return ""
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// portFree reports whether addr can be bound now for TCP and UDP.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	udp.Close()
	return true
}

type proc struct {
	cmd    *exec.Cmd
	stderr *proclog.Buffer
}

// start runs a long-lived lifeline process and stops it (SIGTERM) when the test ends.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), stderr: &proclog.Buffer{}}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop asks the process to shut down and checks it does so within 5 s with status 0.
func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM; log:\n%s", p.cmd.Args[1], err, p.stderr)
		}
	case <-time.After(6 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("%s did not stop within 5 s of SIGTERM", p.cmd.Args[1])
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		json.Unmarshal(body, v)
	}
	return resp.StatusCode
}

type statusBody struct {
	Role     string `json:"role"`
	Device   string `json:"device"`
	Overall  string `json:"overall"`
	Services []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		Detail    string `json:"detail"`
		LastError string `json:"last_error"`
	} `json:"services"`
}

func (s statusBody) service(name string) (state, detail string) {
	for _, x := range s.Services {
		if x.Name == name {
			return x.State, x.Detail + " " + x.LastError
		}
	}
	return "", ""
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadConfigExitsTwoWithOneLine(t *testing.T) {
	dir := t.TempDir()
	unknown := writeFile(t, dir, "unknown.toml", "[dicom]\nlisten = \"127.0.0.1:11112\"\naetitle = \"X\"\n")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"edge", "--config", filepath.Join(dir, "missing.toml")}, []string{"missing.toml", "does not exist"}},
		{[]string{"edge", "--config", unknown, "--data", dir}, []string{"unknown.toml", `"dicom.aetitle"`, "unknown key"}},
		{[]string{"hub", "--config", unknown, "--data", dir}, []string{"unknown.toml", `"dicom"`, "unknown key"}},
		{[]string{"edge", "--bogus-flag"}, []string{"bogus-flag"}},
		{[]string{"sim", "camera"}, []string{"not built yet"}},
	} {
		code, _, stderr := lifeline(t, c.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", c.args, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr %q lacks %q", c.args, stderr, w)
			}
		}
		if c.args[1] == "--config" && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: want one line, got %q", c.args, stderr)
		}
	}
	code, out, _ := lifeline(t, "version")
	if code != 0 || !strings.HasPrefix(out, "lifeline ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// TestEnrolmentEndToEnd runs a hub and a box as processes: the box starts degraded
// (not enrolled) but healthy, enrols with a one-time code, connects with mutual TLS,
// and is refused and audited once revoked. A second use of the code is refused.
func TestEnrolmentEndToEnd(t *testing.T) {
	dir := t.TempDir()
	hubAddr, hubStatus, edgeHTTP, dicom := freePort(t), freePort(t), freePort(t), freePort(t)
	hubConf := writeFile(t, dir, "hub.toml", fmt.Sprintf("[server]\nlisten = %q\n[status]\nlisten = %q\n", hubAddr, hubStatus))
	edgeConf := writeFile(t, dir, "edge.toml", fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = \"https://%s\"\n[dicom]\nlisten = %q\n", edgeHTTP, hubAddr, dicom))
	hubData, edgeData := filepath.Join(dir, "hub"), filepath.Join(dir, "edge")

	// Enrolment works before the hub runs (directly on its store) …
	code, out, stderr := lifeline(t, "hub", "enroll", "--data", hubData, "--config", hubConf, "--device", "AMB-0001")
	if code != 0 {
		t.Fatalf("hub enroll (stopped hub): %d %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	firstCode := lines[len(lines)-1]

	hub := start(t, "hub", "--config", hubConf, "--data", hubData)
	var hs statusBody
	wait.For(t, 10*time.Second, "hub status", func() bool {
		return getJSON(t, "http://"+hubStatus+"/api/v1/status", &hs) == 200 && hs.Overall == "ready"
	})
	if st, _ := hs.service("hub-server"); st != "ready" || hs.Role != "hub" {
		t.Fatalf("hub status: %+v", hs)
	}
	if getJSON(t, "http://"+hubStatus+"/healthz", nil) != 200 {
		t.Fatal("hub /healthz")
	}
	assertMetrics(t, "http://"+hubStatus+"/metrics")

	// … and while it runs (through its admin socket).
	code, out, stderr = lifeline(t, "hub", "enroll", "--data", hubData, "--config", hubConf, "--device", "AMB-0002")
	if code != 0 {
		t.Fatalf("hub enroll (running hub): %d %s", code, stderr)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	secondCode := lines[len(lines)-1]

	edge := start(t, "edge", "--config", edgeConf, "--data", edgeData)
	var es statusBody
	wait.For(t, 10*time.Second, "box degraded before enrolment", func() bool {
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
		st, _ := es.service("hub-link")
		return st == "degraded"
	})
	if getJSON(t, "http://"+edgeHTTP+"/healthz", nil) != 200 {
		t.Fatal("a box that is not enrolled must still be healthy")
	}
	assertMetrics(t, "http://"+edgeHTTP+"/metrics")

	if code, _, stderr := lifeline(t, "edge", "enroll", "--config", edgeConf, "--data", edgeData, "--code", firstCode); code != 0 {
		t.Fatalf("edge enroll: %d %s", code, stderr)
	}
	info, err := os.Stat(filepath.Join(edgeData, "identity", "device.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("box key: %v %v", info, err)
	}
	if code, _, stderr := lifeline(t, "edge", "enroll", "--config", edgeConf, "--data", filepath.Join(dir, "other"), "--code", firstCode); code == 0 || !strings.Contains(stderr, "already used") {
		t.Fatalf("second use of a code: %d %s", code, stderr)
	}

	// The code issued through the running hub's admin socket works as well.
	if code, out, stderr := lifeline(t, "edge", "enroll", "--config", edgeConf, "--data", filepath.Join(dir, "second"), "--code", secondCode); code != 0 || !strings.Contains(out, "AMB-0002") {
		t.Fatalf("enrol with code from running hub: %d %s %s", code, out, stderr)
	}

	// The running box picks the identity up at its next hub check; restart it to not
	// wait the check interval.
	edge.stop(t)
	edge = start(t, "edge", "--config", edgeConf, "--data", edgeData)
	wait.For(t, 10*time.Second, "box connected to hub", func() bool {
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
		st, _ := es.service("hub-link")
		return st == "ready"
	})
	if es.Device != "AMB-0001" {
		t.Fatalf("box device = %q", es.Device)
	}

	if code, _, stderr := lifeline(t, "hub", "revoke", "--data", hubData, "--config", hubConf, "--device", "AMB-0001"); code != 0 {
		t.Fatalf("hub revoke: %d %s", code, stderr)
	}
	edge.stop(t)
	edge = start(t, "edge", "--config", edgeConf, "--data", edgeData)
	wait.For(t, 10*time.Second, "revoked box refused", func() bool {
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
		st, detail := es.service("hub-link")
		return st == "degraded" && strings.Contains(detail, "403")
	})
	edge.stop(t)
	hub.stop(t)

	auditLog, err := os.ReadFile(filepath.Join(hubData, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"enrol.code_issued"`, `"enrol.accepted"`, `"enrol.refused"`, `"device.connected"`, `"device.revoked"`, `"device.refused"`} {
		if !strings.Contains(string(auditLog), want) {
			t.Errorf("audit log lacks %s:\n%s", want, auditLog)
		}
	}
	if !strings.Contains(string(auditLog), "AMB-0001 is revoked") && !strings.Contains(string(auditLog), "device is revoked") {
		t.Errorf("audit log does not say why the box was refused:\n%s", auditLog)
	}
}

func assertMetrics(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"lifeline_service_state{", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("%s lacks %s", url, want)
		}
	}
}

// TestDemoStartsAndStops runs `lifeline demo`, reads the box's page it names and follows
// the sign-in link it prints last into a browser that watches the live stream.
func TestDemoStartsAndStops(t *testing.T) {
	cmd := exec.Command(binary, "demo", "--random-ports", "--data", t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the demo's log:\n%s", stderr.String())
		}
	})
	lines := make(chan string)
	go func() {
		buf := make([]byte, 4096)
		var acc string
		for {
			n, err := stdout.Read(buf)
			acc += string(buf[:n])
			for {
				i := strings.IndexByte(acc, '\n')
				if i < 0 {
					break
				}
				lines <- acc[:i]
				acc = acc[i+1:]
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	// The box's status page is named on its line; the one-time sign-in link to the ED
	// screen comes last.
	var url, link, board, reports string
	timeout := time.After(30 * time.Second)
	for link == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo ended early: %s", stderr.String())
			}
			if _, page, found := strings.Cut(l, "status page "); found {
				url = strings.TrimSpace(page)
			}
			if _, b, found := strings.Cut(l, "the hub's board at "); found {
				board = strings.TrimSpace(b)
			}
			if _, r, found := strings.Cut(l, "logs every report to "); found {
				reports = strings.TrimSpace(r)
			}
			if strings.HasPrefix(l, "https://") && strings.Contains(l, "/signin/link") {
				link = strings.TrimSpace(l)
			}
		case <-timeout:
			t.Fatalf("demo printed no sign-in link: %s", stderr.String())
		}
	}
	if !strings.HasPrefix(url, "http://") {
		t.Fatalf("demo named no box status page before its sign-in link")
	}
	var st statusBody
	wait.For(t, 15*time.Second, "demo box connected to its hub", func() bool {
		getJSON(t, url+"api/v1/status", &st)
		s, _ := st.service("hub-link")
		return s == "ready"
	})
	if st.Device != "DEMO-AMB-1" {
		t.Fatalf("demo box device %q", st.Device)
	}
	// The simulated monitor's numbers reach the box's vitals API.
	wait.For(t, 20*time.Second, "demo vitals", func() bool {
		var vitals []vital
		getJSON(t, url+"api/v1/vitals", &vitals)
		for _, v := range vitals {
			if v.Code == "MDC_ECG_HEART_RATE" && v.Unit == "/min" {
				return true
			}
		}
		return false
	})
	// The simulated ambulance drives: the hub's board shows it moving, with its ETA to
	// the hospital and the modem's link quality.
	wait.For(t, 30*time.Second, "the demo ambulance moving on the hub's board with an ETA and link quality", func() bool {
		var boxes []struct {
			Device   string
			Fix      string
			SpeedKmh float64 `json:"speed_kmh"`
			ETA      *struct{ Arrival time.Time }
			Link     *struct{ Bars int }
		}
		getJSON(t, board, &boxes)
		for _, b := range boxes {
			if b.Device == "DEMO-AMB-1" && b.Fix == "fixed" && b.SpeedKmh > 10 && b.ETA != nil && b.Link != nil {
				return true
			}
		}
		return false
	})

	wait.For(t, 20*time.Second, "the box's location reports in the dispatch platform's log", func() bool {
		log, _ := os.ReadFile(reports)
		return strings.Count(string(log), "\n") >= 2
	})

	// The doctor's link signs a browser in, and the box's clip and vitals play there.
	tab := watchSignedIn(t, link, "DEMO-AMB-1")
	// The 12-lead button works: the box acquires the simulated monitor's twelve
	// leads and the hub shows the ECG.
	peers.Eval[bool](t, tab, `(() => { document.getElementById("ecg12").click(); return true; })()`)
	wait.For(t, 60*time.Second, "the demo's 12-lead ECG at the hub", func() bool {
		shown := peers.Eval[map[string]map[string]float64](t, tab, `window.edView.crew.ecgShown`)
		for _, v := range shown {
			return v["leads"] == 12
		}
		return false
	})

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(8 * time.Second):
		t.Fatal("demo did not stop after SIGTERM")
	}
}
