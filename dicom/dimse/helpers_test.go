package dimse_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/spool"
	"lifeline/internal/durable"
	"lifeline/internal/proclog"
	"lifeline/internal/wait"
)

// box is a running SCP with a real spool, as the appliance wires them.
type box struct {
	addr  string
	port  string
	scp   *dimse.SCP
	spool *spool.Spool
	store *durable.Store
	logs  *proclog.Buffer
	reg   *prometheus.Registry
	stop  func()
}

func startBox(t testing.TB, cfg dimse.SCPConfig, scfg spool.Config) *box {
	t.Helper()
	dir := t.TempDir()
	store, err := durable.Open(filepath.Join(dir, "state.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	logs := &proclog.Buffer{}
	var out io.Writer = io.MultiWriter(logs, testWriter{t})
	if _, fuzz := t.(*testing.F); fuzz {
		// A fuzz target may not log through f, and millions of inputs' lines would
		// only fill memory.
		out = io.Discard
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if scfg.MinFreeBytes == 0 {
		scfg.MinFreeBytes = 1 << 20
	}
	sp, err := spool.Open(filepath.Join(dir, "spool"), store, scfg, log)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	scp, err := dimse.NewSCP(cfg, sp, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- scp.Serve(ctx, ln) }()
	go func() { done <- sp.Run(ctx) }()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	b := &box{addr: ln.Addr().String(), port: port, scp: scp, spool: sp, store: store, logs: logs, reg: reg}
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cancel()
			for i := 0; i < 2; i++ {
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			}
			sp.Close()
			store.Close()
		})
	}
	t.Cleanup(b.stop)
	return b
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startStoreSCP runs DCMTK's storescp +xa writing into a fresh directory.
func startStoreSCP(t *testing.T, storescp string, extra ...string) (port string, dir string) {
	t.Helper()
	dir = t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	ln.Close()
	args := append([]string{"+xa", "-aet", "LIFELINE", "-od", dir}, extra...)
	args = append(args, port)
	cmd := exec.Command(storescp, args...)
	var out proclog.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("storescp output:\n%s", out.String())
		}
	})
	waitPort(t, "127.0.0.1:"+port)
	return port, dir
}

func waitPort(t *testing.T, addr string) {
	t.Helper()
	wait.For(t, 2*time.Second, "a listener on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// datasetOf returns the data set bytes of a Part 10 file (everything after the meta).
func datasetOf(t *testing.T, path string) ([]byte, dicom.Meta) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, off, err := dicom.ReadMeta(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data[off:], m
}

// storescpFile finds the file storescp wrote for an instance.
func storescpFile(t *testing.T, dir, sop string) string {
	t.Helper()
	var found string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, sop) {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("storescp stored no file for %s in %s", sop, dir)
	}
	return found
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func countInstances(t testing.TB, sp *spool.Spool) int {
	t.Helper()
	n := 0
	if err := sp.Instances(func(spool.Instance) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					match = true
				}
			}
			if match {
				if m.GetCounter() != nil {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

var _ = fmt.Sprintf

func storescpFileMaybe(dir, sop string) string {
	var found string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, sop) {
			found = p
		}
		return nil
	})
	return found
}
