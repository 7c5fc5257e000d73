package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{
		"20M": 20e6, "3000k": 3e6, "1.5G": 1.5e9, "64000": 64000, "20Mbit": 20e6, "10mbit/s": 10e6, "0": 0,
	} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-3M", "M"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) accepted", in)
		}
	}
}

// TestSimLinkUsage: bad profiles and overrides exit with status 2 before touching the
// network.
func TestSimLinkUsage(t *testing.T) {
	for _, args := range [][]string{
		{"sim", "link", "--profile", "3g", "--", "true"},
		{"sim", "link", "--up", "fast", "--", "true"},
		{"sim", "link", "--loss", "2", "--", "true"},
	} {
		code, _, stderr := lifeline(t, args...)
		if code != exitUsage || !strings.Contains(stderr, "lifeline sim link:") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

// TestSimLinkRunsAcrossTheLink runs a TCP receiver (socat) in the hub namespace and a
// sender in the box namespace through `lifeline sim link`: the bytes cross the shaped
// link, the command's exit status is passed on, and the namespaces are gone afterwards.
func TestSimLinkRunsAcrossTheLink(t *testing.T) {
	peers.NeedRoot(t)
	peers.Need(t, "socat", "ip")
	out := filepath.Join(t.TempDir(), "received")
	code, _, stderr := lifeline(t, "sim", "link", "--profile", "4g-rural", "--seed", "3",
		"--hub-cmd", "exec socat -u TCP4-LISTEN:7000,reuseaddr CREATE:"+out,
		"--", "sh", "-c", `printf 'across the link' | socat -u - TCP4:$LIFELINE_LINK_HUB:7000 && exit 7`)
	t.Log(stderr)
	if code != 7 {
		t.Fatalf("exit status %d, want the command's 7", code)
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != "across the link" {
		t.Errorf("hub received %q (%v)", got, err)
	}
	if !regexp.MustCompile(`uplink [1-9]\d* packets`).MatchString(stderr) {
		t.Error("final stats show no uplink packets")
	}
	names := regexp.MustCompile(`in netns (\S+)`).FindAllStringSubmatch(stderr, -1)
	if len(names) != 2 {
		t.Errorf("namespaces not printed")
	}
	for _, ns := range names {
		if _, err := os.Stat("/run/netns/" + ns[1]); err == nil {
			t.Errorf("namespace %s left behind", ns[1])
		}
	}
}

// TestSimLinkForwardsSignals: SIGTERM to `lifeline sim link` reaches the command, whose
// death by that signal becomes the exit status, and the namespaces are deleted.
func TestSimLinkForwardsSignals(t *testing.T) {
	peers.NeedRoot(t)
	peers.Need(t, "ip")
	// The command marks when it runs, so that the signal comes once the link is up and
	// the command started.
	started := filepath.Join(t.TempDir(), "started")
	cmd := exec.Command(binary, "sim", "link", "--linger", "0", "--", "sh", "-c", "touch "+started+" && exec sleep 30")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "the command to start across the link", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("sim link did not end after SIGTERM")
	}
	if code := cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d, want %d (killed by SIGTERM); stderr:\n%s", code, 128+int(syscall.SIGTERM), stderr.String())
	}
	names := regexp.MustCompile(`in netns (\S+)`).FindAllStringSubmatch(stderr.String(), -1)
	if len(names) != 2 {
		t.Fatalf("namespaces not printed:\n%s", stderr.String())
	}
	for _, ns := range names {
		if _, err := os.Stat("/run/netns/" + ns[1]); err == nil {
			t.Errorf("namespace %s left behind", ns[1])
		}
	}
}

// TestSimLinkControl drives a running `lifeline sim link` over its control endpoint: a
// handover gives the box a new address, bad requests are refused, and the counters show
// in /stats and /metrics.
func TestSimLinkControl(t *testing.T) {
	peers.NeedRoot(t)
	peers.Need(t, "ip")
	addr := freePort(t)
	cmd := exec.Command(binary, "sim", "link", "--control", addr, "--linger", "0", "--", "sleep", "20")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		t.Log(stderr.String())
	}()
	base := "http://" + addr
	type stats struct{ Box, Hub string }
	get := func() stats {
		var st stats
		wait.For(t, 20*time.Second, "GET /stats to answer", func() bool {
			resp, err := http.Get(base + "/stats")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			return json.NewDecoder(resp.Body).Decode(&st) == nil
		})
		return st
	}
	before := get()
	if before.Box != "10.201.0.2" || before.Hub != "10.202.0.1" {
		t.Fatalf("stats before: %+v", before)
	}
	for path, want := range map[string]int{"/handover": 400, "/outage?for=-1s": 400, "/handover?for=300ms": 204} {
		resp, err := http.Post(base+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// The handover's 300 ms outage ends with the box at a new address.
	wait.For(t, 10*time.Second, "the box's new address after the handover", func() bool { return get().Box != before.Box })
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`lifeline_linkemu_packets_total{direction="uplink",link="5g-urban",result="delivered"}`)) {
		t.Errorf("/metrics lacks the link's counters:\n%.500s", body)
	}
}
