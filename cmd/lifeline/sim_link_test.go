package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/internal/peers"
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
	cmd := exec.Command(binary, "sim", "link", "--linger", "0", "--", "sleep", "30")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // link up and sleep started
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
