package proclog

import (
	"os/exec"
	"strings"
	"testing"
)

// TestReadWhileWritten reads a child's log while the child writes it; under -race a
// missing lock fails here.
func TestReadWhileWritten(t *testing.T) {
	var log Buffer
	cmd := exec.Command("sh", "-c", "for i in $(seq 1 200); do echo line $i >&2; done")
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		_ = log.String()
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(log.String(), "\n"); got != 200 || !strings.HasSuffix(log.String(), "line 200\n") {
		t.Fatalf("log has %d lines, want 200 ending with line 200:\n%s", got, log.String())
	}
}
