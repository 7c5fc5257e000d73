package audit

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestAppendOnlyJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for round := 0; round < 2; round++ { // reopening appends, never truncates
		l, err := Open(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.Audit("stream.view", map[string]any{"user": "dr.li", "device": "AMB-0001", "n": i})
			}()
		}
		wg.Wait()
		l.Close()
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %q", lines+1, sc.Text())
		}
		if rec["event"] != "stream.view" || rec["user"] != "dr.li" || rec["time"] == nil {
			t.Fatalf("line %d: %v", lines+1, rec)
		}
		lines++
	}
	if lines != 40 {
		t.Fatalf("%d lines, want 40", lines)
	}
}
