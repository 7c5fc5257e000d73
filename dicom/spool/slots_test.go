package spool

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/phantom"
	"lifeline/internal/durable"
	"lifeline/internal/peers"
	"lifeline/internal/selfexec"
)

// killChildEnv makes the test binary a receiver that acknowledges instances through
// CommitDurable and prints each acknowledged SOP Instance UID, until it is killed.
const killChildEnv = "LIFELINE_SPOOL_KILL_CHILD"

func TestMain(m *testing.M) {
	selfexec.Main(m, map[string]selfexec.Role{killChildEnv: runKillChild})
}

// withoutXattrs ends a test of the one-flush path on a file system without extended
// attributes: skipped, or failed under LIFELINE_REQUIRE_PEERS=1, where CI must not pass
// without having tested the path the box takes on its own disk.
func withoutXattrs(t *testing.T, why string) {
	t.Helper()
	if peers.Required() {
		t.Fatalf("no extended attributes on this file system (LIFELINE_REQUIRE_PEERS=1): %s", why)
	}
	t.Skipf("no extended attributes on this file system: %s", why)
}

// putDurable stores an instance as the C-STORE SCP does: acknowledged once durable.
func putDurable(s *Spool, spec phantom.Spec, callingAE string) error {
	w, err := s.Begin(dicom.Incoming{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: spec.SOPInstanceUID,
		TransferSyntaxUID: dicom.ExplicitVRLittleEndian, CallingAE: callingAE})
	if err != nil {
		return err
	}
	if _, err := w.Write(phantom.Dataset(spec)); err != nil {
		return err
	}
	return w.(*writer).CommitDurable()
}

func runKillChild(dir string) int {
	store, err := durable.Open(filepath.Join(dir, "state.db"), 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := Open(filepath.Join(dir, "spool"), store, Config{MinFreeBytes: 1 << 20}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	round := os.Getenv(killChildEnv + "_ROUND")
	for i := 0; ; i++ {
		sop := fmt.Sprintf("2.25.%s.%d", round, i+1)
		spec := phantom.Spec{StudyUID: "2.25." + round, SOPInstanceUID: sop, Rows: 64, Columns: 64, Fill: byte(i)}
		if err := putDurable(s, spec, "CT9"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(out, sop) // the acknowledgement the modality would see
		out.Flush()
	}
}

// TestSIGKILLAfterDurableAcknowledgement kills a receiver that acknowledges from its
// slots (one fsync, rename and index after) at random moments. After each kill the
// reopened spool must hold every acknowledged instance under its final name with the
// bytes that were sent, indexed with its calling AE, queued for the forwarder once its
// study is quiet, and no slot holding anything. Over the rounds, recovery must have
// landed acknowledged slots at least once, or the test did not test that path.
func TestSIGKILLAfterDurableAcknowledgement(t *testing.T) {
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
	landedTotal, ackedTotal := 0, 0
	for round := 0; round < rounds; round++ {
		dir := t.TempDir()
		child := selfexec.Command(killChildEnv, dir, fmt.Sprintf("%s_ROUND=%d", killChildEnv, 8100+round))
		stdout, err := child.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var childLog strings.Builder
		child.Stderr = &childLog
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		acked := make(chan []string)
		first := make(chan struct{})
		go func() {
			var sops []string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if sops = append(sops, sc.Text()); len(sops) == 1 {
					close(first)
				}
			}
			acked <- sops
		}()
		// Kill at a random moment once the child receives (a loaded machine may take
		// seconds to start it).
		select {
		case <-first:
		case <-time.After(30 * time.Second):
		}
		time.Sleep(time.Duration(rng.Int64N(int64(700 * time.Millisecond))))
		child.Process.Signal(syscall.SIGKILL)
		sops := <-acked
		child.Wait()
		if len(sops) == 0 {
			t.Fatalf("round %d: nothing acknowledged before the kill:\n%s", round, childLog.String())
		}
		ackedTotal += len(sops)
		landedTotal += checkAfterKill(t, dir, sops, fmt.Sprintf("round %d", round))
		if t.Failed() {
			t.Logf("child log:\n%s", childLog.String())
			return
		}
	}
	if landedTotal == 0 {
		t.Errorf("no kill left an acknowledged instance in its slot: the recovery of slots went untested")
	}
	t.Logf("%d rounds, %d acknowledged, %d landed by recovery", rounds, ackedTotal, landedTotal)
}

// checkAfterKill reopens a killed receiver's spool and checks it; it returns how many
// slots recovery landed.
func checkAfterKill(t *testing.T, dir string, sops []string, round string) int {
	t.Helper()
	store, err := durable.Open(filepath.Join(dir, "state.db"), 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", round, err)
	}
	defer store.Close()
	s, err := Open(filepath.Join(dir, "spool"), store, Config{MinFreeBytes: 1 << 20, QuietPeriod: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("%s: reopen: %v", round, err)
	}
	defer s.Close()
	for i, sop := range sops {
		in, err := s.Instance(sop)
		if err != nil {
			t.Errorf("%s: acknowledged instance %s lost: %v", round, sop, err)
			continue
		}
		spec := phantom.Spec{StudyUID: in.StudyUID, SOPInstanceUID: sop, Rows: 64, Columns: 64, Fill: byte(i)}
		want := sha256.Sum256(phantom.File(spec))
		data, err := os.ReadFile(in.Path)
		got := sha256.Sum256(data)
		if err != nil || got != want || in.SHA256 != hex.EncodeToString(want[:]) || in.CallingAE != "CT9" {
			t.Errorf("%s: %s differs from what was sent (read %v, calling AE %q)", round, sop, err, in.CallingAE)
		}
	}
	for _, f := range spoolFiles(t, s) {
		if durable.IsPartial(f) {
			t.Errorf("%s: partial file after recovery: %s", round, f)
		}
	}
	filepath.Walk(s.Dir(), func(p string, info os.FileInfo, err error) error {
		if err == nil && IsSlot(p) && info.Size() != 0 {
			t.Errorf("%s: slot with %d bytes after recovery", round, info.Size())
		}
		return nil
	})
	// The forwarder finds them: at once among the instances it sends while the
	// study arrives, and in the study queued once quiet.
	pending, err := s.PendingInstances(nil)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, in := range pending {
		listed[in.SOPInstanceUID] = true
	}
	for _, sop := range sops {
		if !listed[sop] {
			t.Errorf("%s: acknowledged %s not among the pending instances the forwarder sends", round, sop)
		}
	}
	// The forwarder finds them: the study is queued once quiet, with every one.
	if n, err := s.FlushReady(time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("%s: %d studies queued (%v), want 1", round, n, err)
	}
	q := queued(t, s)
	found := map[string]bool{}
	for _, in := range q[0].Instances {
		found[in.SOPInstanceUID] = true
	}
	for _, sop := range sops {
		if !found[sop] {
			t.Errorf("%s: acknowledged %s not queued for the forwarder", round, sop)
		}
	}
	return s.recovered.Landed
}

// TestRecoveryLandsOnlyMarkedSlots: of the slots a crash leaves, the one whose mark
// matches its bytes is landed under its final name and indexed with the mark's calling
// AE; one whose mark does not match (the fsync did not finish) and one without a mark
// (a transfer cut short) are removed, as neither was acknowledged.
func TestRecoveryLandsOnlyMarkedSlots(t *testing.T) {
	dir := t.TempDir()
	s, store, _ := open(t, dir, Config{})
	s.Close()
	store.Close()
	root := filepath.Join(dir, "spool")
	slot := func(name string, data []byte, m *mark) {
		f, err := os.Create(filepath.Join(root, slotPrefix+name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.Write(data)
		if m != nil {
			raw, _ := json.Marshal(m)
			if err := setMark(f, raw); err != nil {
				withoutXattrs(t, err.Error())
			}
		}
	}
	good := phantom.File(phantom.Spec{StudyUID: "2.25.31", SOPInstanceUID: "2.25.31.1"})
	sum := sha256.Sum256(good)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	slot("good", good, &mark{Size: int64(len(good)), SHA256: hex.EncodeToString(sum[:]), CallingAE: "US2", ReceivedAt: at})
	torn := phantom.File(phantom.Spec{StudyUID: "2.25.31", SOPInstanceUID: "2.25.31.2"})
	slot("torn", torn[:len(torn)/2], &mark{Size: int64(len(torn)), SHA256: hex.EncodeToString(sum[:])})
	slot("cut", good[:100], nil)

	s, _, logs := open(t, dir, Config{})
	in, err := s.Instance("2.25.31.1")
	if err != nil {
		t.Fatalf("marked slot not landed: %v\n%s", err, logs.String())
	}
	if in.Path != filepath.Join(root, "2.25.31", "2.25.31.1.dcm") || in.CallingAE != "US2" || !in.ReceivedAt.Equal(at) || in.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("landed as %+v", in)
	}
	if _, err := s.Instance("2.25.31.2"); err == nil {
		t.Errorf("a slot whose bytes do not match its mark was indexed")
	}
	for _, name := range []string{"good", "torn", "cut"} {
		if _, err := os.Stat(filepath.Join(root, slotPrefix+name)); !os.IsNotExist(err) {
			t.Errorf("slot %s still there after recovery", name)
		}
	}
	if s.recovered.Landed != 1 || s.recovered.Removed != 2 {
		t.Errorf("recovery %+v, want 1 landed and 2 removed", s.recovered)
	}
}

// TestDurableAcknowledgementLandsInBatches: instances acknowledged from slots are
// found by SOP at once (Instance waits for the lander), land under their final names,
// count as received again with identical bytes while still landing, and are queued
// together; the ready slots are stocked again.
func TestDurableAcknowledgementLandsInBatches(t *testing.T) {
	s, _, _ := open(t, t.TempDir(), Config{QuietPeriod: time.Minute})
	if !s.slotsOn {
		withoutXattrs(t, "the spool found none at Open")
	}
	for i := 0; i < slotTarget+slotTarget/2; i++ {
		spec := phantom.Spec{StudyUID: "2.25.40", SOPInstanceUID: phantom.UID("2.25.40", i), Rows: 4, Columns: 4}
		if err := putDurable(s, spec, "CT1"); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// The same bytes again while (most likely) still landing: a duplicate.
			if err := putDurable(s, spec, "CT1"); err != nil {
				t.Fatal(err)
			}
		}
	}
	in, err := s.Instance(phantom.UID("2.25.40", slotTarget+slotTarget/2-1))
	if err != nil {
		t.Fatalf("last acknowledged instance not found: %v", err)
	}
	if _, err := os.Stat(in.Path); err != nil {
		t.Errorf("indexed before its file was in place: %v", err)
	}
	if st := s.Status(); st.Duplicates != 1 {
		t.Errorf("%d duplicates counted, want 1", st.Duplicates)
	}
	if n, _ := s.FlushReady(time.Now().Add(2 * time.Minute)); n != 1 {
		t.Fatal("study not queued")
	}
	if q := queued(t, s); len(q[0].Instances) != slotTarget+slotTarget/2 {
		t.Errorf("%d instances queued, want %d", len(q[0].Instances), slotTarget+slotTarget/2)
	}
	s.Close()
	s.lmu.Lock()
	ready := len(s.ready)
	s.lmu.Unlock()
	if ready < slotTarget/2 {
		t.Errorf("%d ready slots after landing, want at least %d", ready, slotTarget/2)
	}
}
