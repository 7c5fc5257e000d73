package vitals

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/selfexec"
	"lifeline/telemetry"
)

// The kill test runs this test binary as a box: an Outbox fed by the patient
// generator, attached to an in-process stand-in for the hub that prints every
// reliable message it receives and acknowledges now and then. The parent kills it with
// SIGKILL at a random moment, restarts it on the same store, and checks what the
// restarted box replays.
const killChildEnv = "LIFELINE_VITALS_KILL_CHILD"

func TestMain(m *testing.M) {
	selfexec.Main(m, map[string]selfexec.Role{killChildEnv: runKilledBox})
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// runKilledBox prints "msg SEQ DIGEST" for every reliable message sent, "acked SEQ"
// after an ack was handled, and "durable SEQ" when a commit has put SEQ on disk.
func runKilledBox(dir string) int {
	store, err := durable.Open(filepath.Join(dir, "box.db"), 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bus := telemetry.NewBus(nil)
	out, err := NewOutbox(OutboxConfig{Store: store, Bus: bus, Device: "amb-07", FlushEvery: 20 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lines := make(chan string, 4096)
	stdout := bufio.NewWriter(os.Stdout)
	reliable := func(data []byte) error {
		m, err := Decode(data)
		if err != nil {
			return err
		}
		lines <- fmt.Sprintf("msg %d %s", m.Seq, digest(data))
		if m.Seq%37 == 0 {
			ack := fmt.Sprintf(`{"v":1,"type":"ack","seq":%d,"epoch":%q}`, m.Seq, out.Epoch())
			if err := out.HandleFromHub([]byte(ack)); err != nil {
				return err
			}
			lines <- fmt.Sprintf("acked %d", m.Seq)
		}
		return nil
	}
	out.Attach(reliable, func([]byte) error { return nil })
	go out.Run(context.Background())
	p := newPatient(time.Now())
	pace := time.NewTicker(5 * time.Millisecond) // 20 times real time, to spare the CPU
	var durableSeq uint64
	for range pace.C {
		for _, ev := range p.next() {
			bus.Publish("monitor0", ev)
		}
		if d := out.Stats().Durable; d > durableSeq {
			durableSeq = d
			lines <- fmt.Sprintf("durable %d", d)
		}
		for len(lines) > 0 {
			fmt.Fprintln(stdout, <-lines)
		}
		stdout.Flush()
	}
	return 0
}

// killRound is what one run of the child reported before it was killed.
type killRound struct {
	sent    []uint64
	digests map[uint64]string
	acked   uint64
	durable uint64
}

func TestSIGKILLLosesNoCommittedMessageAndReplayResumesExactly(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 11))
	content := map[uint64]string{} // every seq ever sent, with its content
	var prev *killRound
	replayed := 0
	for round := 0; round < rounds; round++ {
		r := runAndKill(t, dir, 2+rng.IntN(12))
		for _, seq := range r.sent {
			if old, ok := content[seq]; ok && old != r.digests[seq] {
				t.Fatalf("round %d: seq %d was reused for a different message after the kill", round, seq)
			}
			content[seq] = r.digests[seq]
		}
		for i := 1; i < len(r.sent); i++ {
			if r.sent[i] <= r.sent[i-1] {
				t.Fatalf("round %d: seq %d sent after %d", round, r.sent[i], r.sent[i-1])
			}
		}
		if prev != nil {
			replayed += checkReplay(t, round, prev, r)
		}
		prev = r
	}
	if replayed == 0 {
		t.Fatal("no round had committed, unacknowledged messages to replay: the test proved nothing")
	}
	t.Logf("%d rounds, %d messages, %d replayed after a SIGKILL", rounds, len(content), replayed)
}

// checkReplay checks that a restarted box sent first, in order and unchanged, every
// message the previous run had committed and the hub had not acknowledged.
func checkReplay(t *testing.T, round int, prev, r *killRound) int {
	t.Helper()
	var want []uint64
	for _, seq := range prev.sent {
		if seq > prev.acked && seq <= prev.durable {
			want = append(want, seq)
		}
	}
	// The restarted box may also resend what the previous run acknowledged but had not
	// yet committed the ack of: skip those, then the committed tail must follow.
	got := r.sent
	for len(got) > 0 && len(want) > 0 && got[0] < want[0] {
		if got[0] > prev.acked {
			t.Fatalf("round %d: replay starts with seq %d, which was never acknowledged nor committed", round, got[0])
		}
		got = got[1:]
	}
	for i, seq := range want {
		if i >= len(got) || got[i] != seq {
			t.Fatalf("round %d: committed seq %d (acked up to %d, durable %d) not replayed in place; replay was %v", round, seq, prev.acked, prev.durable, r.sent[:min(len(r.sent), len(want)+5)])
		}
		if r.digests[seq] != prev.digests[seq] {
			t.Fatalf("round %d: seq %d replayed with different content", round, seq)
		}
	}
	return len(want)
}

// runAndKill starts the child box, kills it after it reported durableLines commits,
// and returns what it reported.
func runAndKill(t *testing.T, dir string, durableLines int) *killRound {
	t.Helper()
	cmd := selfexec.Command(killChildEnv, dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &killRound{digests: map[uint64]string{}}
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	seen := 0
	for sc.Scan() {
		if r.parse(sc.Text()) == "durable" {
			seen++
			if seen == durableLines {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
	}
	// Whatever the child printed before it died still counts: it had happened.
	for sc.Scan() {
		r.parse(sc.Text())
	}
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	if seen < durableLines {
		t.Fatalf("child box stopped after %d commits: %s", seen, stderr.String())
	}
	return r
}

func (r *killRound) parse(line string) string {
	var kind string
	var seq uint64
	var dig string
	n, _ := fmt.Sscanf(line, "%s %d %s", &kind, &seq, &dig)
	switch {
	case n == 3 && kind == "msg":
		r.sent = append(r.sent, seq)
		r.digests[seq] = dig
	case n >= 2 && kind == "acked":
		r.acked = max(r.acked, seq)
	case n >= 2 && kind == "durable":
		r.durable = max(r.durable, seq)
	}
	return kind
}
