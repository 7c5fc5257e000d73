package dimse_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/durable"
	"lifeline/internal/peers"
	"lifeline/internal/proclog"
	"lifeline/internal/selfexec"
	"lifeline/internal/wait"
)

// childEnv makes the test binary run as the box's DICOM receiver (see TestMain), so
// that the SIGKILL test can kill a real process in the middle of its work.
const childEnv = "LIFELINE_DICOM_SCP_CHILD"

func TestMain(m *testing.M) {
	selfexec.Main(m, map[string]selfexec.Role{childEnv: runChildSCP})
}

// runChildSCP serves the SCP with a spool in dir until killed, writing its port to
// dir/port once it listens. With dir/tls.crt and dir/tls.key it serves DICOM TLS.
func runChildSCP(dir string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := durable.Open(filepath.Join(dir, "state.db"), 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sp, err := spool.Open(filepath.Join(dir, "spool"), store, spool.Config{MinFreeBytes: 1 << 20}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var cfg dimse.SCPConfig
	if cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err == nil {
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	scp, err := dimse.NewSCP(cfg, sp, log, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if err := durable.WriteFile(filepath.Join(dir, "port"), []byte(port), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go sp.Run(context.Background())
	if err := scp.Serve(context.Background(), ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestSIGKILLDuringStoreSCU kills the receiver with SIGKILL at a random moment of a
// 500-instance storescu run, 20 times. After each kill the spool, reopened (which
// runs crash recovery), must hold no partial or corrupt file, and every instance
// storescu saw acknowledged must be present with the SHA-256 in the index.
func TestSIGKILLDuringStoreSCU(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	rounds, perRound := 20, 500
	if testing.Short() {
		rounds = 3
	}
	state := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var window time.Duration = 1500 * time.Millisecond
	totalAcked := 0
	for round := 0; round < rounds; round++ {
		src := t.TempDir()
		var files []string
		for i := 0; i < perRound; i++ {
			sop := fmt.Sprintf("2.25.%d.%d", 7000+round, i+1)
			files = append(files, writeFile(t, src, fmt.Sprintf("%03d.dcm", i),
				phantom.File(phantom.Spec{StudyUID: fmt.Sprintf("2.25.%d", 7000+round), SOPInstanceUID: sop, Rows: 8, Columns: 8, Fill: byte(i), DefinedLengths: true})))
		}
		os.Remove(filepath.Join(state, "port"))
		child := selfexec.Command(childEnv, state)
		childLog := &proclog.Buffer{}
		child.Stderr = childLog
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		port := waitPortFile(t, filepath.Join(state, "port"))
		scu := exec.Command(storescu, append([]string{"-v", "-aec", "LIFELINE", "127.0.0.1", port}, files...)...)
		out, err := scu.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		scu.Stderr = scu.Stdout
		if err := scu.Start(); err != nil {
			t.Fatal(err)
		}
		acked := make(chan map[string]bool)
		go func() { acked <- parseAcked(out) }()
		delay := time.Duration(rng.Int64N(int64(window)))
		time.Sleep(delay)
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		ack := <-acked
		scu.Wait()
		if len(ack) == perRound {
			// The run finished before the kill: aim earlier next time.
			window = window * 3 / 4
		}
		totalAcked += len(ack)
		checkSpoolAfterCrash(t, state, ack, fmt.Sprintf("round %d (killed after %v, %d acknowledged)", round, delay, len(ack)))
		if t.Failed() {
			t.Logf("child log:\n%s", childLog.String())
			return
		}
	}
	if totalAcked == 0 {
		t.Errorf("no round acknowledged anything: the kill always came too early to test anything")
	}
	t.Logf("%d rounds, %d instances acknowledged in total", rounds, totalAcked)
}

func waitPortFile(t *testing.T, path string) string {
	t.Helper()
	var port []byte
	wait.For(t, 10*time.Second, "the child SCP to write its port", func() bool {
		b, err := os.ReadFile(path)
		port = b
		return err == nil && len(b) > 0
	})
	return string(port)
}

// parseAcked reads storescu -v output and returns the files it saw answered with
// Success.
func parseAcked(r io.Reader) map[string]bool {
	acked := map[string]bool{}
	sc := bufio.NewScanner(r)
	current := ""
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "I: Sending file: "); ok {
			current = f
		} else if strings.HasPrefix(line, "I: Received Store Response (Success)") && current != "" {
			acked[current] = true
			current = ""
		}
	}
	return acked
}

// checkSpoolAfterCrash reopens the spool as a restarted box would and checks it.
func checkSpoolAfterCrash(t *testing.T, state string, acked map[string]bool, round string) {
	t.Helper()
	store, err := durable.Open(filepath.Join(state, "state.db"), 5*time.Second)
	if err != nil {
		t.Fatalf("%s: reopen store: %v", round, err)
	}
	defer store.Close()
	sp, err := spool.Open(filepath.Join(state, "spool"), store, spool.Config{MinFreeBytes: 1 << 20}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("%s: reopen spool: %v", round, err)
	}
	indexed := map[string]spool.Instance{}
	sp.Instances(func(in spool.Instance) error { indexed[in.Path] = in; return nil })
	bySOP := map[string]spool.Instance{}
	for _, in := range indexed {
		bySOP[in.SOPInstanceUID] = in
	}
	filepath.Walk(sp.Dir(), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		if spool.IsSlot(p) {
			// Open lands the slots that hold an acknowledged instance and leaves
			// only fresh, empty ones.
			if info.Size() != 0 {
				t.Errorf("%s: slot with %d bytes left after recovery: %s", round, info.Size(), p)
			}
			return nil
		}
		if durable.IsPartial(p) {
			t.Errorf("%s: partial file left after recovery: %s", round, p)
			return nil
		}
		in, ok := indexed[p]
		if !ok {
			t.Errorf("%s: file not in the index after recovery: %s", round, p)
			return nil
		}
		if sum := fileSHA(t, p); sum != in.SHA256 {
			t.Errorf("%s: %s is corrupt: SHA-256 %s, index %s", round, p, sum, in.SHA256)
		}
		f, err := dicom.OpenFile(p)
		if err != nil {
			t.Errorf("%s: %s does not parse: %v", round, p, err)
		} else if f.Meta.SOPInstanceUID != in.SOPInstanceUID {
			t.Errorf("%s: %s holds %s, index says %s", round, p, f.Meta.SOPInstanceUID, in.SOPInstanceUID)
		}
		return nil
	})
	for path := range acked {
		f, err := dicom.OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		in, ok := bySOP[f.Meta.SOPInstanceUID]
		if !ok {
			t.Errorf("%s: acknowledged instance %s is missing from the spool", round, f.Meta.SOPInstanceUID)
			continue
		}
		src, _ := datasetOf(t, path)
		got, _ := datasetOf(t, in.Path)
		if string(src) != string(got) {
			t.Errorf("%s: acknowledged instance %s differs from what was sent", round, f.Meta.SOPInstanceUID)
		}
	}
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}
