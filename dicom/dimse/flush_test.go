package dimse_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/dicom/phantom"
	"lifeline/internal/peers"
	"lifeline/internal/proclog"
	"lifeline/internal/wait"
)

// TestFlushesPerInstance counts the flushes (fsync, fdatasync) of the receiver, run
// under strace as a child process, while storescu sends 100 instances on one
// association. Before issue 17 each instance cost four before its response plus
// bbolt's extras (4.7 per instance measured); now one fsync of its slot comes before
// the response and the directory fsyncs and index commits are shared by a batch.
// The test allows 2 per instance, and requires at least one per instance (an SCP
// that stopped flushing would pass a bound alone).
func TestFlushesPerInstance(t *testing.T) {
	bins := peers.Need(t, "storescu", "strace")
	storescu, strace := bins[0], bins[1]
	const n = 100
	src := t.TempDir()
	var files []string
	for i := 0; i < n; i++ {
		files = append(files, writeFile(t, src, fmt.Sprintf("%03d.dcm", i), phantom.File(phantom.Spec{StudyUID: "2.25.8800",
			SOPInstanceUID: fmt.Sprintf("2.25.8800.%d", i+1), Rows: 64, Columns: 64, Fill: byte(i), DefinedLengths: true})))
	}
	state := t.TempDir()
	trace := filepath.Join(t.TempDir(), "trace")
	child := exec.Command(strace, "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", trace, os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+state)
	childLog := &proclog.Buffer{}
	child.Stderr = childLog
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // strace and the receiver end together
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-child.Process.Pid, syscall.SIGKILL)
		child.Wait()
	}()
	port := waitPortFile(t, filepath.Join(state, "port"))
	// Only what the receiving costs counts: start counting once the child listens.
	before := countFlushes(t, trace)
	out, err := exec.Command(storescu, append([]string{"-aec", "LIFELINE", "127.0.0.1", port}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("storescu: %v\n%s\n%s", err, out, childLog.String())
	}
	// The lander's batches after the last response belong to these instances too:
	// count once the trace has not grown for half a second (a batch waits 100 ms).
	last, since := -1, time.Now()
	wait.For(t, 20*time.Second, "the receiver's flushes to settle", func() bool {
		if c := countFlushes(t, trace); c != last {
			last, since = c, time.Now()
		}
		return time.Since(since) > 500*time.Millisecond
	})
	flushes := countFlushes(t, trace) - before
	t.Logf("%d flushes for %d instances (%.2f each)", flushes, n, float64(flushes)/n)
	if flushes > 2*n || flushes < n {
		t.Errorf("%d flushes for %d instances, want between %d and %d", flushes, n, n, 2*n)
	}
}

func countFlushes(t *testing.T, trace string) int {
	t.Helper()
	data, err := os.ReadFile(trace)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "fsync(") || strings.Contains(line, "fdatasync(") {
			if !strings.Contains(line, "resumed>") {
				n++
			}
		}
	}
	return n
}
