package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// TestDemoRemovesItsTemporaryState runs `lifeline demo` without --data, as `make demo`
// does, and checks that the state it wrote while it ran is gone after it stopped,
// unless --keep asked to keep it.
func TestDemoRemovesItsTemporaryState(t *testing.T) {
	for _, keep := range []bool{false, true} {
		name := "removed"
		if keep {
			name = "kept with --keep"
		}
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			args := []string{"demo", "--random-ports"}
			if keep {
				args = append(args, "--keep")
			}
			cmd := exec.Command(binary, args...)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
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
			// The first line names the state directory; the last is the sign-in link.
			lines := bufio.NewScanner(stdout)
			var dir string
			for lines.Scan() {
				if d, ok := strings.CutPrefix(lines.Text(), "Lifeline demo: state in "); ok {
					dir = d
				}
				if strings.HasPrefix(lines.Text(), "https://") && strings.Contains(lines.Text(), "/signin/link") {
					break
				}
			}
			if dir == "" || filepath.Dir(dir) != tmp {
				t.Fatalf("demo state in %q, want a new directory in TMPDIR %s; stderr:\n%s", dir, tmp, stderr.String())
			}
			// The box's store and the modality's first study are written while it runs.
			wait.For(t, 20*time.Second, "the demo's state on disk", func() bool {
				_, errBox := os.Stat(filepath.Join(dir, "edge", "edge.db"))
				_, errCT := os.Stat(filepath.Join(dir, "modality", "study-1"))
				return errBox == nil && errCT == nil
			})
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("demo exit: %v\n%s", err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("demo did not stop after SIGTERM")
			}
			_, err = os.Stat(dir)
			switch {
			case keep && err != nil:
				t.Fatalf("--keep: the demo's state %s is gone: %v", dir, err)
			case !keep && !os.IsNotExist(err):
				t.Fatalf("the demo's temporary state %s is still there after it stopped (stat: %v)", dir, err)
			}
		})
	}
}
