package transfer

import (
	"context"
	"fmt"
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
	fwd, err := NewForwarder(ForwarderConfig{HubURL: os.Getenv(envBoxHub), ChunkSize: 64 << 10, Parallel: 4,
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second, IdleTimeout: 3 * time.Second},
		store, nil, id.ClientTLS(), testLog(t), nil)
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
	fmt.Printf("box: done; wire %d bytes, re-sent %d, restarts from zero %d\n", st.WireBytes, st.ResentBytes, st.RestartsFromZero)
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
	boxDir := t.TempDir()
	idDir := filepath.Join(boxDir, "identity")
	p.enrollInto(t, "AMB-0100", idDir)
	storePath := filepath.Join(boxDir, "box.db")
	store, err := durable.Open(storePath, 0)
	if err != nil {
		t.Fatal(err)
	}
	box := &testBox{t: t, dir: boxDir, store: store}
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(100), Instances: 200, Rows: 256, Columns: 256, Seed: 100}, "CT1")
	store.Close()
	total := sumSizes(insts)

	startBox := func() (*exec.Cmd, chan error) {
		cmd := link.Command(linkemu.Box, os.Args[0], "-test.run=^TestBoxProcess$", "-test.v")
		cmd.Env = append(os.Environ(), envBoxStore+"="+storePath, envBoxIdentity+"="+idDir,
			envBoxHub+"=https://"+netip.MustParseAddrPort(hub.addr).String())
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		return cmd, exited
	}
	cmd, exited := startBox()
	defer func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	}()

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
	cmd.Process.Signal(syscall.SIGKILL) // power cut on the box
	<-exited
	cmd, exited = startBox()
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
	case err := <-exited:
		exited <- err // for the deferred cleanup
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
