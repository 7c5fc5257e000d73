package audit

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTable is a shared table in memory that can be made to fail or to hang.
type fakeTable struct {
	mu    sync.Mutex
	lines []string
	fail  error
	hang  bool
	tries int
}

func (f *fakeTable) AppendAudit(ctx context.Context, event string, line []byte) error {
	f.mu.Lock()
	f.tries++
	fail, hang := f.fail, f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail != nil {
		return fail
	}
	var rec map[string]any
	if err := json.Unmarshal(line, &rec); err != nil || rec["event"] != event {
		return errors.New("line does not carry its event")
	}
	f.mu.Lock()
	f.lines = append(f.lines, event)
	f.mu.Unlock()
	return nil
}

func (f *fakeTable) set(fail error, hang bool) {
	f.mu.Lock()
	f.fail, f.hang = fail, hang
	f.mu.Unlock()
}

func (f *fakeTable) seen() ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lines), f.tries
}

// TestSharedTableTakesEveryLine: security actions and observations reach both the
// file and the table.
func TestSharedTableTakesEveryLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tab := &fakeTable{}
	l.AlsoTo(tab, TableConfig{})
	if err := l.Record("device.revoked", map[string]any{"device": "AMB-1"}); err != nil {
		t.Fatal(err)
	}
	l.Audit("device.connected", map[string]any{"device": "AMB-2"})
	want := []string{"device.revoked", "device.connected"}
	if got, _ := tab.seen(); !slices.Equal(got, want) {
		t.Fatalf("table holds %v, want %v", got, want)
	}
	if got := readEvents(t, path); !slices.Equal(got, want) {
		t.Fatalf("file holds %v, want %v", got, want)
	}
}

// TestSharedTableFailureFailsClosed: a security action whose line the table does not
// take is refused, also when the table hangs (within the timeout), and the file says
// the line did not reach the table; an observation stays in the file; after a failure
// observations skip the table for a rest, security actions never do.
func TestSharedTableFailureFailsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tab := &fakeTable{}
	l.AlsoTo(tab, TableConfig{Timeout: 200 * time.Millisecond, Rest: time.Hour})

	tab.set(errors.New("connection refused"), false)
	err = l.Record("enrol.code_issued", map[string]any{"device": "AMB-1"})
	if err == nil || !strings.Contains(err.Error(), "not in the shared audit trail") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Record with the table failing: %v, want a refusal naming the table's error", err)
	}
	tab.set(nil, true)
	began := time.Now()
	if err := l.Record("device.revoked", map[string]any{"device": "AMB-1"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Record with the table hanging: %v, want the timeout", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("Record waited %v for a hanging table", took)
	}
	_, triesBefore := tab.seen()
	l.Audit("device.connected", map[string]any{"device": "AMB-2"})
	if _, tries := tab.seen(); tries != triesBefore {
		t.Fatalf("an observation tried the table during its rest (%d tries, %d before)", tries, triesBefore)
	}
	tab.set(nil, false)
	if err := l.Record("device.revoked", map[string]any{"device": "AMB-3"}); err != nil {
		t.Fatalf("Record once the table is back: %v", err)
	}
	// Told that the table answers, observations go to it at once, rest or not.
	tab.set(errors.New("connection refused"), false)
	l.Audit("device.connected", map[string]any{"device": "AMB-4"})
	tab.set(nil, false)
	l.TableAnswers()
	l.Audit("hub.shared_state_back", nil)
	want := []string{"enrol.code_issued", "audit.not_shared", "device.revoked", "audit.not_shared", "device.connected", "device.revoked", "device.connected", "hub.shared_state_back"}
	if got := readEvents(t, path); !slices.Equal(got, want) {
		t.Fatalf("file holds %v, want %v", got, want)
	}
	if got, _ := tab.seen(); !slices.Equal(got, []string{"device.revoked", "hub.shared_state_back"}) {
		t.Fatalf("table holds %v, want only what came while it answered", got)
	}
}
