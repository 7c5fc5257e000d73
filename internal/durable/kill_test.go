package durable

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"lifeline/internal/selfexec"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The kill test runs this test binary as a child that writes as fast as it can and
// prints a line for every write that returned (was "acknowledged"). The parent kills
// it with SIGKILL at a random moment and then checks that everything acknowledged is
// there and intact.
const childEnv = "LIFELINE_DURABLE_KILL_CHILD"

func TestMain(m *testing.M) {
	selfexec.Main(m, map[string]selfexec.Role{childEnv: runWriter})
}

// record returns deterministic content for item n, with its own checksum, so a torn
// or mixed-up value is detectable.
func record(n int) []byte {
	body := bytes.Repeat([]byte(fmt.Sprintf("item-%d;", n)), 1+n%50)
	sum := sha256.Sum256(body)
	return append(sum[:8], body...)
}

func intact(v []byte) bool {
	if len(v) < 8 {
		return false
	}
	sum := sha256.Sum256(v[8:])
	return bytes.Equal(sum[:8], v[:8])
}

func runWriter(dir string) int {
	s, err := Open(filepath.Join(dir, "store.db"), 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := 0
	if b, err := s.Get("meta", []byte("next")); err == nil {
		start = int(binary.BigEndian.Uint64(b))
	}
	q := s.Queue("work")
	out := bufio.NewWriter(os.Stdout)
	for n := start; ; n++ {
		var seq uint64
		err := s.Update(func(tx *Tx) error {
			var err error
			if seq, err = PushTx(tx, q, record(n)); err != nil {
				return err
			}
			b, err := Bucket(tx, "index")
			if err != nil {
				return err
			}
			var next [8]byte
			binary.BigEndian.PutUint64(next[:], uint64(n+1))
			if err := b.Put([]byte(strconv.Itoa(n)), record(n)); err != nil {
				return err
			}
			m, err := Bucket(tx, "meta")
			if err != nil {
				return err
			}
			return m.Put([]byte("next"), next[:])
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// Every 7th item is consumed, to exercise deletes and free-page reuse.
		if n%7 == 0 {
			if err := q.Ack(seq); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if err := WriteFile(filepath.Join(dir, "files", fmt.Sprintf("f%d", n%20)), record(n), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(out, "ack %d %d\n", n, seq)
		out.Flush()
	}
}

func TestSurvivesSIGKILL(t *testing.T) {
	rounds := 50
	if testing.Short() {
		rounds = 10
	}
	dir := t.TempDir()
	acked := map[int]uint64{} // item → queue sequence, for every write the child confirmed
	consumed := map[uint64]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < rounds; round++ {
		cmd := selfexec.Command(childEnv, dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rng.IntN(180)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if strings.TrimSpace(stderr.String()) != "" {
			t.Fatalf("round %d: writer failed: %s", round, stderr.String())
		}
		for _, line := range strings.Split(stdout.String(), "\n") {
			var n int
			var seq uint64
			if _, err := fmt.Sscanf(line, "ack %d %d", &n, &seq); err == nil {
				acked[n] = seq
				if n%7 == 0 {
					consumed[seq] = true
				}
			}
		}
		verifyAfterKill(t, dir, round, acked, consumed)
	}
	if len(acked) < rounds {
		t.Fatalf("only %d writes acknowledged in %d rounds: the test did not exercise the store", len(acked), rounds)
	}
	t.Logf("%d rounds, %d acknowledged writes, all present and intact", rounds, len(acked))
}

func verifyAfterKill(t *testing.T, dir string, round int, acked map[int]uint64, consumed map[uint64]bool) {
	t.Helper()
	s, err := Open(filepath.Join(dir, "store.db"), 5*time.Second)
	if err != nil {
		t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
	}
	defer s.Close()
	for n := range acked {
		v, err := s.Get("index", []byte(strconv.Itoa(n)))
		if err != nil {
			t.Fatalf("round %d: acknowledged item %d lost: %v", round, n, err)
		}
		if !bytes.Equal(v, record(n)) {
			t.Fatalf("round %d: item %d corrupted", round, n)
		}
	}
	items, err := s.Queue("work").Peek(0)
	if err != nil {
		t.Fatal(err)
	}
	inQueue := map[uint64]bool{}
	for _, it := range items {
		if !intact(it.Value) {
			t.Fatalf("round %d: queue item %d corrupted", round, it.Seq)
		}
		inQueue[it.Seq] = true
	}
	for n, seq := range acked {
		if !consumed[seq] && !inQueue[seq] {
			t.Fatalf("round %d: acknowledged queue item %d (seq %d) lost", round, n, seq)
		}
		if consumed[seq] && inQueue[seq] {
			t.Fatalf("round %d: consumed queue item %d (seq %d) came back", round, n, seq)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "files"))
	for _, e := range entries {
		if IsPartial(e.Name()) {
			continue // a write the kill interrupted; never acknowledged
		}
		v, err := os.ReadFile(filepath.Join(dir, "files", e.Name()))
		if err != nil || !intact(v) {
			t.Fatalf("round %d: file %s torn: %v", round, e.Name(), err)
		}
	}
	if _, err := RemovePartials(filepath.Join(dir, "files")); err != nil {
		t.Fatal(err)
	}
}
