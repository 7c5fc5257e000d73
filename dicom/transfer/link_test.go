package transfer

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"lifeline/dicom/pacs"
	"lifeline/dicom/pacs/pacstest"
	"lifeline/dicom/spool"
	"lifeline/internal/durable"
	"lifeline/internal/linkemu"
	"lifeline/internal/peers"
	"lifeline/internal/trust"
	"lifeline/internal/wait"
)

// Environment of TestBoxProcess, the box run as a child process so it can be killed.
const (
	envBoxStore    = "LIFELINE_TRANSFER_BOX_STORE"
	envBoxIdentity = "LIFELINE_TRANSFER_BOX_IDENTITY"
	envBoxHub      = "LIFELINE_TRANSFER_BOX_HUB"
	// envBoxDefaults makes the box process run the forwarder at the product's
	// defaults (timeouts, back-off, chunk size) instead of the fault test's short ones.
	envBoxDefaults = "LIFELINE_TRANSFER_BOX_DEFAULTS"
	// envBoxQUICRetry sets ForwarderConfig.QUICRetry (a duration).
	envBoxQUICRetry = "LIFELINE_TRANSFER_BOX_QUIC_RETRY"
)

// TestBoxProcess is not a test: it is the box's forwarder in a process of its own,
// started by TestStudyOverFailingLinkArrivesExactlyOnce inside the box's network
// namespace. It exits 0 once the ready queue is empty.
func TestBoxProcess(t *testing.T) {
	storePath := os.Getenv(envBoxStore)
	if storePath == "" {
		t.Skip("run as a child of TestStudyOverFailingLinkArrivesExactlyOnce")
	}
	id, err := trust.LoadIdentity(os.Getenv(envBoxIdentity))
	if err != nil {
		t.Fatal(err)
	}
	store, err := durable.Open(storePath, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := ForwarderConfig{HubURL: os.Getenv(envBoxHub), ChunkSize: 64 << 10, Parallel: 4,
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second, IdleTimeout: 3 * time.Second}
	if os.Getenv(envBoxDefaults) != "" {
		cfg = ForwarderConfig{HubURL: cfg.HubURL}
	}
	if v := os.Getenv(envBoxQUICRetry); v != "" {
		if cfg.QUICRetry, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	fwd, err := NewForwarder(cfg, store, nil, id.ClientTLS(), testLog(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fwd.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait.For(t, 10*time.Minute, "the ready queue to empty", func() bool {
		n, err := store.Queue(spool.ReadyQueue).Len()
		return err == nil && n == 0
	})
	st := fwd.Status()
	fmt.Printf("box: done; wire %d bytes, re-sent %d, restarts from zero %d, transport %s\n", st.WireBytes, st.ResentBytes, st.RestartsFromZero, st.Transport)
}

// boxProcess is a box forwarding from a store of its own in a child process
// (TestBoxProcess) in the link's box namespace, so that it sees the link as a box does.
type boxProcess struct {
	cmd    *exec.Cmd
	exited chan error // the process's end, once
}

// queueForBoxProcess enrols device into a new box directory and queues spec's study
// in its store, for a box process to forward. It returns the store's and identity's
// paths, the instances and their total size.
func queueForBoxProcess(t *testing.T, p *pki, device string, spec pacstest.StudySpec) (storePath, idDir string, insts []pacstest.Instance, total int64) {
	t.Helper()
	boxDir := t.TempDir()
	idDir = filepath.Join(boxDir, "identity")
	p.enrollInto(t, device, idDir)
	storePath = filepath.Join(boxDir, "box.db")
	store, err := durable.Open(storePath, 0)
	if err != nil {
		t.Fatal(err)
	}
	box := &testBox{t: t, dir: boxDir, store: store}
	insts = box.queue(spec, "CT1")
	store.Close()
	return storePath, idDir, insts, sumSizes(insts)
}

// startBoxProcess starts a box process on the store and identity, forwarding to the
// hub at hubAddr, with more environment for TestBoxProcess; its output goes to out.
// The process is killed when the test ends if it still runs.
func startBoxProcess(t *testing.T, link *linkemu.Link, storePath, idDir, hubAddr string, out io.Writer, more ...string) *boxProcess {
	t.Helper()
	cmd := link.Command(linkemu.Box, os.Args[0], "-test.run=^TestBoxProcess$", "-test.v")
	cmd.Env = append(append(os.Environ(), envBoxStore+"="+storePath, envBoxIdentity+"="+idDir,
		envBoxHub+"=https://"+netip.MustParseAddrPort(hubAddr).String()), more...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &boxProcess{cmd: cmd, exited: make(chan error, 1)}
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); done <- err; b.exited <- err }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
	return b
}

// TestStudyOverFailingLinkArrivesExactlyOnce is the acceptance test: a
// 200-instance study crosses an emulated 5G link that drops five times (two of them
// handovers to a new box address), the hub is restarted once and the box is killed
// with SIGKILL once; every instance reaches Orthanc exactly once with the right MD5,
// and no upload starts again from byte 0.
func TestStudyOverFailingLinkArrivesExactlyOnce(t *testing.T) {
	peers.NeedRoot(t)
	peers.Need(t, "ip")
	o := pacstest.StartOrthanc(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	link, err := linkemu.Start(ctx, linkemu.FiveGUrban(), linkemu.Options{Logger: testLog(t), Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()

	hubAddr := link.HubAddr().String()
	p := newPKI(t, hubAddr)
	hub := startHubIn(t, p, pacs.NewSTOW(o.STOWURL, nil), link.InHub, hubAddr+":0")

	// Queue the study in the box's store, then hand the store to the box process.
	storePath, idDir, insts, total := queueForBoxProcess(t, p, "AMB-0100",
		pacstest.StudySpec{StudyUID: uid(100), Instances: 200, Rows: 256, Columns: 256, Seed: 100})
	startBox := func() *boxProcess { return startBoxProcess(t, link, storePath, idDir, hub.addr, os.Stderr) }
	box := startBox()

	at := func(frac float64) {
		t.Helper()
		wait.For(t, 2*time.Minute, fmt.Sprintf("%.0f%% on the hub", frac*100), func() bool {
			return float64(hub.appendedTotal()) >= frac*float64(total)
		})
	}
	at(0.10)
	link.Outage(time.Second)
	at(0.20)
	link.Handover(1500 * time.Millisecond)
	at(0.30)
	box.cmd.Process.Signal(syscall.SIGKILL) // power cut on the box
	<-box.exited
	box = startBox()
	at(0.45)
	link.Outage(time.Second)
	at(0.55)
	hub.stop()
	// The box meets the stopped hub: packets it sent after the stop (not those already
	// on the way) reach the hub's side, where nothing listens.
	before := link.Stats().Up
	wait.For(t, 30*time.Second, "the box to reach the stopped hub", func() bool {
		return link.Stats().Up.Packets > before.Packets+uint64(before.InFlight)
	})
	hub.start()
	at(0.65)
	link.Handover(1500 * time.Millisecond)
	at(0.80)
	link.Outage(time.Second)

	select {
	case err := <-box.exited:
		if err != nil {
			t.Fatalf("box process: %v", err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("box did not finish the study")
	}
	wait.For(t, time.Minute, "study delivered to Orthanc", func() bool {
		st, _ := hub.ingest.Status()
		return st.PendingDeliveries == 0 && len(st.Studies) == 1 && !st.Studies[0].DeliveredAt.IsZero()
	})

	// Every byte was appended exactly once over all runs of the hub: no upload went
	// back to byte 0 and no instance was uploaded twice.
	if got := hub.appendedTotal(); got != total {
		t.Fatalf("hub appended %d bytes for %d bytes of instances", got, total)
	}
	if d := hub.duplicates + hub.ingest.duplicates.Load(); d != 0 {
		t.Fatalf("%d instances uploaded twice", d)
	}
	stored, err := o.Instances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(insts) {
		t.Fatalf("Orthanc holds %d instances, want %d", len(stored), len(insts))
	}
	for _, in := range insts {
		i := slices.IndexFunc(stored, func(s pacstest.StoredInstance) bool { return s.SOPInstanceUID == in.SOPInstanceUID })
		if i < 0 || stored[i].MD5 != in.MD5 {
			t.Fatalf("instance %s: not in Orthanc with MD5 %s", in.SOPInstanceUID, in.MD5)
		}
		rec, err := hub.ingest.Instance(in.SOPInstanceUID)
		if err != nil || rec.Attempts != 1 {
			t.Fatalf("instance %s: delivered in %d attempts (%v)", in.SOPInstanceUID, rec.Attempts, err)
		}
	}
	t.Logf("200 instances, %d bytes; hub connections %+v", total, hub.server.Stats())
}

// TestHandoverCostsOnlyItsLength is the box process, at the product's defaults,
// forwarding over the emulated 5g-urban link through two 3 s outages, the second a handover to a new box address.
// The box must notice each lost path and dial a new connection, so that data reaches
// the hub again within a second of the link's return: QUIC alone waits for its
// doubling probe timer and, after the address change, for the hub to validate the
// new path (about 6 s in all).
func TestHandoverCostsOnlyItsLength(t *testing.T) {
	peers.NeedRoot(t)
	peers.Need(t, "ip")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	link, err := linkemu.Start(ctx, linkemu.FiveGUrban(), linkemu.Options{Logger: testLog(t), Seed: 18})
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	hubAddr := link.HubAddr().String()
	p := newPKI(t, hubAddr)
	hub := startHubIn(t, p, nil, link.InHub, hubAddr+":0")

	storePath, idDir, _, total := queueForBoxProcess(t, p, "AMB-0181",
		pacstest.StudySpec{StudyUID: uid(181), Instances: 16, Rows: 1024, Columns: 1024, Seed: 181})
	box := startBoxProcess(t, link, storePath, idDir, hub.addr, os.Stderr, envBoxDefaults+"=1")

	const outage = 3 * time.Second
	for i, handover := range []bool{false, true} {
		frac := int64(i+1) * total / 4
		wait.For(t, time.Minute, "a share of the study on the hub", func() bool { return hub.appendedTotal() > frac })
		if handover {
			link.Handover(outage)
		} else {
			link.Outage(outage)
		}
		back := time.Now().Add(outage)
		time.Sleep(outage / 2) // let what was on the way land
		// A chunk nearly whole before the cut may land at once; what counts is when
		// the link carries the study at its rate again: 2 MiB take 0.84 s at 20 Mbit/s.
		before := hub.appendedTotal()
		const more = 2 << 20
		wait.For(t, 30*time.Second, "2 MiB more on the hub", func() bool { return hub.appendedTotal() >= before+more })
		late := time.Since(back)
		t.Logf("outage %d (handover: %v): 2 MiB more on the hub %v after the link came back", i+1, handover, late.Round(10*time.Millisecond))
		// The goal is their time at link rate + 1 s; half a second more is left for a
		// loaded machine (bench-forward measures the goal itself). QUIC alone took 3 s.
		// Under the race detector the link emulator and the box run several times
		// slower than the link: only what arrives is checked then.
		if ideal := time.Duration(float64(more*8) / 20e6 * float64(time.Second)); !raceDetector && late > ideal+1500*time.Millisecond {
			t.Errorf("outage %d (handover: %v): 2 MiB more took %v after the link came back, want at most %v (their time at link rate + 1.5 s)",
				i+1, handover, late.Round(10*time.Millisecond), (ideal + 1500*time.Millisecond).Round(10*time.Millisecond))
		}
	}
	select {
	case err := <-box.exited:
		if err != nil {
			t.Fatalf("box process: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("box did not finish the study")
	}
	if got := hub.appendedTotal(); got != total {
		t.Fatalf("hub appended %d bytes for %d bytes of instances", got, total)
	}
}
