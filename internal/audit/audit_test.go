package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"lifeline/internal/peers"
)

func TestAppendOnlyJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for round := 0; round < 2; round++ { // reopening appends, never truncates
		l, err := Open(path, quietLog())
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

// TestFullDiskFailsClosedWithoutTornLines fills a small tmpfs, mounted by the test, and
// checks that a security event that does not fit is refused with an error, leaves no
// part of itself in the file, and that the file takes events again once there is room.
func TestFullDiskFailsClosedWithoutTornLines(t *testing.T) {
	peers.NeedRoot(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		peers.Missing(t, "cannot mount a tmpfs to fill: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	l, err := Open(filepath.Join(dir, "audit.log"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Record("enrol.code_issued", map[string]any{"device": "AMB-0001"}); err != nil {
		t.Fatal(err)
	}
	// Fill the rest of the filesystem, leaving less than one event's line.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := filler.Write(make([]byte, 512)); err != nil {
			break
		}
	}
	big := map[string]any{"device": "AMB-0002", "reason": strings.Repeat("x", 10000)} // more than a page
	err = l.Record("device.revoked", big)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("record on a full disk: %v, want ENOSPC", err)
	}
	l.Audit("device.connected", big) // an observation: logged as not audited, no panic
	filler.Close()
	os.Remove(filepath.Join(dir, "filler"))
	if err := l.Record("user.signed_in", map[string]any{"user": "dr.li"}); err != nil {
		t.Fatalf("record after room was made: %v", err)
	}
	events := readEvents(t, filepath.Join(dir, "audit.log"))
	if strings.Join(events, ",") != "enrol.code_issued,user.signed_in" {
		t.Fatalf("events in the file: %v, want the two that were durable", events)
	}
}

// tornFile takes only half of a write and then fails while tear is set, as a disk
// filling up in the middle of a line does.
type tornFile struct {
	*os.File
	tear, failTruncate bool
}

func (f *tornFile) Write(p []byte) (int, error) {
	if !f.tear {
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:len(p)/2])
	return n, syscall.ENOSPC
}

func (f *tornFile) Truncate(size int64) error {
	if f.failTruncate {
		return syscall.EIO
	}
	return f.File.Truncate(size)
}

// TestTornWriteIsCutAway checks that half a line from a failed write is removed, and
// that when it cannot be, the log refuses every later security event instead of
// gluing it to the half line.
func TestTornWriteIsCutAway(t *testing.T) {
	for _, failTruncate := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "audit.log")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		disk := &tornFile{File: f, failTruncate: failTruncate}
		l := New(disk, path, quietLog())
		if err := l.Record("enrol.accepted", map[string]any{"device": "AMB-1"}); err != nil {
			t.Fatal(err)
		}
		disk.tear = true
		if err := l.Record("device.revoked", map[string]any{"device": "AMB-2"}); err == nil {
			t.Fatal("a torn write was reported durable")
		}
		disk.tear = false
		after := l.Record("user.signed_in", map[string]any{"user": "dr.li"})
		l.Close()
		if failTruncate {
			if after == nil {
				t.Fatal("the log took an event after a torn line it could not cut away")
			}
			continue
		}
		if after != nil {
			t.Fatalf("record after a torn line was cut away: %v", after)
		}
		if events := readEvents(t, path); strings.Join(events, ",") != "enrol.accepted,user.signed_in" {
			t.Fatalf("events: %v", events)
		}
	}
}

func TestRecordAfterCloseFails(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "audit.log"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := l.Record("user.signed_in", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("record after close: %v", err)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// readEvents returns the event names of the file's lines, failing on a line that is
// not a whole JSON object.
func readEvents(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not a whole event: %q", i+1, line)
		}
		events = append(events, rec["event"].(string))
	}
	return events
}
