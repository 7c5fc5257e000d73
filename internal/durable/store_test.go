package durable

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestQueueOrderAckAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	q := s.Queue("q")
	for _, v := range []string{"a", "b", "c"} {
		if _, err := q.Push([]byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	items, _ := q.Peek(2)
	if len(items) != 2 || string(items[0].Value) != "a" || string(items[1].Value) != "b" {
		t.Fatalf("peek: %+v", items)
	}
	if err := q.Ack(items[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(items[0].Seq); err != nil {
		t.Fatalf("second ack: %v", err)
	}
	s.Close()

	s, err = Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q = s.Queue("q")
	items, _ = q.Peek(0)
	if n, _ := q.Len(); n != 2 || len(items) != 2 || string(items[0].Value) != "b" {
		t.Fatalf("after reopen: len %d items %+v", n, items)
	}
	seq, _ := q.Push([]byte("d"))
	if seq <= items[1].Seq {
		t.Fatalf("sequence went backwards: %d after %d", seq, items[1].Seq)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestJSONAndNotFound(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v struct{ A int }
	if err := s.GetJSON("b", "k", &v); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := s.PutJSON("b", "k", struct{ A int }{7}); err != nil {
		t.Fatal(err)
	}
	if err := s.GetJSON("b", "k", &v); err != nil || v.A != 7 {
		t.Fatalf("got %v %v", v, err)
	}
	if err := s.Delete("b", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("b", []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestAtomicFileInvisibleUntilCommit(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "study.dcm")
	a, err := CreateAtomic(final, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("half"))
	if _, err := os.Stat(final); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("file visible before commit")
	}
	a.Abort()
	if n, _ := RemovePartials(dir); n != 0 {
		t.Fatalf("abort left %d partial files", n)
	}
	b, _ := CreateAtomic(final, 0o600)
	b.Write([]byte("whole"))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(final); string(got) != "whole" {
		t.Fatalf("got %q", got)
	}
	if err := b.Commit(); err == nil {
		t.Fatal("second commit accepted")
	}
	// A crash leaves a partial file behind; recovery removes it.
	c, _ := CreateAtomic(filepath.Join(dir, "other.dcm"), 0o600)
	c.Write([]byte("torn"))
	c.f.Close()
	if n, _ := RemovePartials(dir); n != 1 {
		t.Fatalf("RemovePartials removed %d, want 1", n)
	}
}
