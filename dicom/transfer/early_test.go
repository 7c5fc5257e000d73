package transfer

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/pacs"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/wait"
)

// deliveredPACS is a PACS that takes everything and remembers what, in order.
type deliveredPACS struct {
	mu   sync.Mutex
	sops []string
}

func (d *deliveredPACS) Deliver(_ context.Context, batch []pacs.Instance) []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, in := range batch {
		d.sops = append(d.sops, in.SOPInstanceUID)
	}
	return make([]error, len(batch))
}

func (d *deliveredPACS) Target() string { return "test pacs" }

func (d *deliveredPACS) has(sops ...string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range sops {
		if !slices.Contains(d.sops, s) {
			return false
		}
	}
	return true
}

// releasingSpool is the box's real spool, recording what the forwarder released.
type releasingSpool struct {
	*spool.Spool
	mu       sync.Mutex
	released []string
}

func (r *releasingSpool) MarkForwarded(sop string) error {
	r.mu.Lock()
	r.released = append(r.released, sop)
	r.mu.Unlock()
	return r.Spool.MarkForwarded(sop)
}

func (r *releasingSpool) MarkForwardedAll(sops []string) error {
	r.mu.Lock()
	r.released = append(r.released, sops...)
	r.mu.Unlock()
	return r.Spool.MarkForwardedAll(sops)
}

func (r *releasingSpool) releasedList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.released)
}

// openSpool gives the box a real spool at product defaults (30 s quiet period).
func openSpool(t *testing.T, b *testBox) *releasingSpool {
	t.Helper()
	sp, err := spool.Open(filepath.Join(b.dir, "spool"), b.store, spool.Config{MinFreeBytes: 1 << 20},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rs := &releasingSpool{Spool: sp}
	b.spool = rs
	return rs
}

// store receives one phantom instance into the spool as the C-STORE SCP does, and
// returns its SOP Instance UID and size.
func storeInto(t *testing.T, sp *releasingSpool, study string, n int) (string, int64) {
	t.Helper()
	spec := phantom.Spec{SOPInstanceUID: study + ".7." + strconv.Itoa(n+1), StudyUID: study, SeriesUID: study + ".1",
		PatientID: "P1", Modality: "CT", TransferSyntaxUID: dicom.ExplicitVRLittleEndian, SOPClassUID: dicom.CTImageStorage,
		Rows: 256, Columns: 256, Fill: byte(n)}
	w, err := sp.Begin(dicom.Incoming{SOPClassUID: spec.SOPClassUID, SOPInstanceUID: spec.SOPInstanceUID,
		TransferSyntaxUID: spec.TransferSyntaxUID, CallingAE: "CT1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(phantom.Dataset(spec)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	in, err := sp.Instance(spec.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	return in.SOPInstanceUID, in.Size
}

// TestInstancesGoUpstreamWhileTheStudyArrives: at the product's 30 s quiet period,
// each instance reaches the hub and the PACS as soon as it is durable on the box,
// before the study is declared complete; declaring it then costs a manifest, not a
// second upload; and an instance arriving after the study was declared complete is
// forwarded and the study declared again.
func TestInstancesGoUpstreamWhileTheStudyArrives(t *testing.T) {
	p := newPKI(t)
	pacsSink := &deliveredPACS{}
	hub := startHub(t, p, pacsSink)
	box := newBox(t, p.enroll(t, "AMB-0017"), ForwarderConfig{HubURL: hub.url(), ChunkSize: 64 << 10})
	sp := openSpool(t, box)
	study := uid(1700)
	var sops []string
	var total int64
	add := func(n int) {
		sop, size := storeInto(t, sp, study, n)
		sops, total = append(sops, sop), total+size
	}
	for n := range 3 {
		add(n)
	}
	start := time.Now()
	box.start()

	onHub := func() bool {
		for _, sop := range sops {
			if _, err := hub.ingest.Instance(sop); err != nil {
				return false
			}
		}
		return pacsSink.has(sops...)
	}
	wait.For(t, 20*time.Second, "the arriving study's instances in the PACS", onHub)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the first instances took %s to reach the PACS; the quiet period is 30 s, so they must not wait for it", took)
	}
	add(3) // the modality sends on
	wait.For(t, 20*time.Second, "the fourth instance in the PACS", onHub)
	if n := box.queueLen(); n != 0 {
		t.Fatalf("%d studies queued: the test meant to see instances forwarded before the quiet period", n)
	}
	wait.For(t, 10*time.Second, "the box to count four instances sent of a study still arriving", func() bool {
		fs := box.fwd.Status()
		return len(fs.Studies) == 1 && fs.Studies[0].State == "receiving" && fs.Studies[0].InstancesDone == 4
	})
	if got := sp.releasedList(); len(got) != 0 {
		t.Fatalf("released %v before the study was declared complete", got)
	}
	if rc, err := hub.ingest.Receipt(context.Background(), "AMB-0017", study); err == nil && rc.Complete {
		t.Fatalf("the hub calls the study complete before its manifest: %+v", rc)
	}

	// The quiet period passes: the study is declared with its manifest only.
	if n, err := sp.FlushReady(time.Now().Add(31 * time.Second)); err != nil || n != 1 {
		t.Fatalf("FlushReady queued %d studies (%v), want 1", n, err)
	}
	box.fwd.Notify()
	wait.For(t, 20*time.Second, "study acknowledged", func() bool { return box.queueLen() == 0 })
	checkReceipt(t, hub, "AMB-0017", study, 4)
	if got := hub.appendedTotal(); got != total {
		t.Fatalf("hub appended %d bytes for %d bytes of instances: declaring the study re-sent some", got, total)
	}
	if got := sp.releasedList(); len(got) != 4 {
		t.Fatalf("released %d instances to the spool once the study was acknowledged, want 4", len(got))
	}

	// A late instance after the study was declared complete: forwarded, and the study
	// declared again.
	add(4)
	wait.For(t, 20*time.Second, "the late instance in the PACS", onHub)
	if n, err := sp.FlushReady(time.Now().Add(31 * time.Second)); err != nil || n != 1 {
		t.Fatalf("FlushReady queued %d studies (%v), want 1", n, err)
	}
	box.fwd.Notify()
	wait.For(t, 20*time.Second, "the study declared again", func() bool { return box.queueLen() == 0 })
	checkReceipt(t, hub, "AMB-0017", study, 5)
	if got := hub.appendedTotal(); got != total {
		t.Fatalf("hub appended %d bytes for %d bytes of instances", got, total)
	}
	if d := hub.ingest.duplicates.Load(); d != 0 {
		t.Fatalf("%d instances uploaded twice", d)
	}
	// The queue empties before the forwarder's status catches up with the last receipt.
	wait.For(t, 10*time.Second, "the box's status to show nothing left to send", func() bool {
		st := box.fwd.Status()
		return st.State == "idle" && len(st.Studies) == 0
	})
	if st := box.fwd.Status(); st.ResentBytes != 0 {
		t.Fatalf("box re-sent %d bytes: %+v", st.ResentBytes, st)
	}
}

func checkReceipt(t *testing.T, hub *testHub, device, study string, stored int) {
	t.Helper()
	rc, err := hub.ingest.Receipt(context.Background(), device, study)
	if err != nil {
		t.Fatal(err)
	}
	if !rc.Complete || rc.Stored != stored {
		t.Fatalf("hub's receipt %+v, want complete with %d stored", rc, stored)
	}
}
