package transfer

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/dicom/spool"
	"lifeline/internal/hubstate"
	"lifeline/internal/wait"
)

// Tests of issue 16 item 5: one box must not spoil another's studies.

// boxClient is a box's protocol client on its own identity, for requests the
// forwarder would never send.
func boxClient(t *testing.T, hub *testHub, tlsConf *tls.Config) *client {
	t.Helper()
	return newTestClient(t, hub.url(), tlsConf)
}

// receiptOf asks the hub for a study's receipt as c's box.
func receiptOf(t *testing.T, c *client, study string) (StudyReceipt, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base()+StudiesPath+"/"+study, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, body, err := c.do(req)
	if err != nil {
		return StudyReceipt{}, err
	}
	var rc StudyReceipt
	return rc, json.Unmarshal(body, &rc)
}

func hubStatus(t *testing.T, hub *testHub) IngestStatus {
	t.Helper()
	st, err := hub.ingest.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestBoxCannotReadOrGrowAnotherBoxsStudy replays the report: box B read box A's
// receipt and added a foreign instance to A's manifest, so A's study never became
// whole. Now B sees only its own record of the study, and A's stays as A sent it.
func TestBoxCannotReadOrGrowAnotherBoxsStudy(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	tlsA, tlsB := p.enroll(t, "AMB-A"), p.enroll(t, "AMB-B")
	boxA := newBox(t, tlsA, ForwarderConfig{HubURL: hub.url()})
	insts := boxA.queue(pacstest.StudySpec{StudyUID: uid(1601), Instances: 3, Seed: 1601}, "CT1")
	boxA.start()
	wait.For(t, 30*time.Second, "box A's study acknowledged", func() bool { return boxA.queueLen() == 0 })

	b := boxClient(t, hub, tlsB)
	_, err := receiptOf(t, b, uid(1601))
	if he, ok := asHubError(err); !ok || he.status != http.StatusNotFound {
		t.Fatalf("box B asked for box A's study: %v, want 404", err)
	}
	foreign := uid(1601) + ".9.9"
	rc, err := b.putManifest(context.Background(), Manifest{StudyUID: uid(1601),
		Instances: []ManifestInstance{{SOPInstanceUID: foreign, Size: 10, SHA256: strings.Repeat("ab", 32)}}})
	if err != nil || rc.Expected != 1 || rc.Stored != 0 || len(rc.Missing) != 1 || rc.Missing[0] != foreign {
		t.Fatalf("box B's manifest for box A's study UID: %+v, %v; want B's own record with its one instance", rc, err)
	}
	a := boxClient(t, hub, tlsA)
	rc, err = receiptOf(t, a, uid(1601))
	if err != nil || rc.Expected != len(insts) || rc.Stored != len(insts) || !rc.Complete || len(rc.Missing) != 0 {
		t.Fatalf("box A's receipt after box B's manifest: %+v, %v; want A's %d instances, complete", rc, err, len(insts))
	}
	st := hubStatus(t, hub)
	if len(st.Studies) != 2 {
		t.Fatalf("hub status lists %d study records, want one per box: %+v", len(st.Studies), st.Studies)
	}
	for _, s := range st.Studies {
		if (s.Device == "AMB-A") != (s.Expected == len(insts) && !s.VerifiedAt.IsZero()) {
			t.Fatalf("study record %+v", s)
		}
	}
}

// TestUIDClashIsQuarantinedNotRefused replays the report: box B uploaded other
// content under box A's SOP Instance UIDs first, and A's real instances were refused
// with 409 and dead-lettered. Now both copies are kept: B's, first, in the archive,
// A's in quarantine for an operator, in the hub's status and audit log; A's study
// completes without a dead letter.
func TestUIDClashIsQuarantinedNotRefused(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	boxB := newBox(t, p.enroll(t, "AMB-B"), ForwarderConfig{HubURL: hub.url()})
	squat := boxB.queue(pacstest.StudySpec{StudyUID: uid(1602), Instances: 2, Seed: 66}, "CT1")
	boxB.start()
	wait.For(t, 30*time.Second, "box B's copies archived", func() bool { return boxB.queueLen() == 0 })

	boxA := newBox(t, p.enroll(t, "AMB-A"), ForwarderConfig{HubURL: hub.url()})
	real := boxA.queue(pacstest.StudySpec{StudyUID: uid(1602), Instances: 2, Seed: 1602}, "CT1")
	boxA.start()
	wait.For(t, 30*time.Second, "box A's study acknowledged", func() bool { return boxA.queueLen() == 0 })
	if dls := deadLetters(t, boxA); len(dls) != 0 {
		t.Fatalf("box A dead-lettered %+v", dls)
	}
	checkArchived(t, hub, squat)
	st := hubStatus(t, hub)
	if st.QuarantinedTotal != len(real) || len(st.Quarantined) != len(real) {
		t.Fatalf("hub status: %d quarantined (%+v), want %d", st.QuarantinedTotal, st.Quarantined, len(real))
	}
	for i, q := range st.Quarantined {
		in := real[i]
		got, err := pacstest.Describe(q.Path)
		if err != nil || q.SOPInstanceUID != in.SOPInstanceUID || q.Device != "AMB-A" || q.ArchivedDevice != "AMB-B" ||
			q.SHA256 != in.SHA256 || q.ArchivedSHA256 != squat[i].SHA256 || got.SHA256 != in.SHA256 {
			t.Fatalf("quarantined copy %+v (file %+v, %v), want box A's %s", q, got, err, in.SOPInstanceUID)
		}
	}
	if n := hub.audit.Count("instance.quarantined"); n != len(real) {
		t.Fatalf("instance.quarantined audited %d times, want %d", n, len(real))
	}
	rc, err := receiptOf(t, boxClient(t, hub, boxA.tls), uid(1602))
	if err != nil || !rc.Complete || len(rc.Quarantined) != len(real) {
		t.Fatalf("box A's receipt: %+v, %v; want complete with its copies quarantined", rc, err)
	}
	for _, s := range st.Studies {
		if s.Device == "AMB-A" && s.Quarantined != len(real) {
			t.Fatalf("box A's study record %+v: want %d quarantined", s, len(real))
		}
	}
}

// TestDeclaredStudyUIDMustMatchDataset uploads an instance under a Study Instance
// UID its dataset does not carry, as a box filing instances into another study
// would: the hub refuses it and files nothing.
func TestDeclaredStudyUIDMustMatchDataset(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	c := boxClient(t, hub, p.enroll(t, "AMB-A"))
	insts, err := pacstest.WriteStudy(t.TempDir(), pacstest.StudySpec{StudyUID: uid(1603), Instances: 1, Seed: 1603})
	if err != nil {
		t.Fatal(err)
	}
	in := insts[0]
	ctx := context.Background()
	up, err := c.create(ctx, spool.Instance{SOPInstanceUID: in.SOPInstanceUID, StudyUID: uid(1699), Size: in.Size, SHA256: in.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(in.Path)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.appendChunk(ctx, in.SOPInstanceUID, up.url, 0, data, true, false)
	if he, ok := asHubError(err); !ok || !he.is(ProblemInvalidDICOM) || !strings.Contains(he.Error(), "Study Instance UID") {
		t.Fatalf("instance declared under another study: %v, want invalid-dicom naming the Study Instance UID", err)
	}
	if _, err := hub.ingest.Instance(in.SOPInstanceUID); err == nil {
		t.Fatal("the hub archived an instance under a study its dataset does not name")
	}
	if _, err := os.Stat(filepath.Join(hub.dir, "archive", "studies", uid(1699))); !os.IsNotExist(err) {
		t.Fatalf("the declared study's directory exists: %v", err)
	}
	if hub.audit.Count("instance.refused") != 1 {
		t.Fatalf("instance.refused audited %d times, want 1", hub.audit.Count("instance.refused"))
	}
}

// TestIncompleteReceiptBacksOffThenBlocks gives box A a study record on the hub that
// expects an instance A does not have (an earlier manifest listed it; instances are
// never removed), so A's receipt stays incomplete however often it asks. It used to
// ask without pause, 1,372 to 4,328 requests in 10 s; now it backs off, with the
// forwarder's default back-off, and reports the study blocked, saying why.
func TestIncompleteReceiptBacksOffThenBlocks(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	box := newBox(t, p.enroll(t, "AMB-A"), ForwarderConfig{HubURL: hub.url()})
	gone := uid(1604) + ".9.9"
	_, err := hub.state.RecordManifest(context.Background(), hubstate.Manifest{StudyUID: uid(1604), Device: "AMB-A",
		Instances: map[string]string{gone: strings.Repeat("cd", 32)}, At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(1604), Instances: 2, Seed: 1604}, "CT1")
	before := hub.requests.Load()
	started := time.Now()
	box.start()
	wait.For(t, 30*time.Second, "the study reported blocked", func() bool {
		s := boxStudy(box, uid(1604))
		return s != nil && s.State == "blocked"
	})
	blockedAfter := time.Since(started)
	s := boxStudy(box, uid(1604))
	if !strings.Contains(s.Reason, "incomplete") || !strings.Contains(s.Reason, gone) || s.InstancesDone != len(insts) {
		t.Fatalf("blocked study %+v: want the reason naming the instance the box does not have, and its own instances done", s)
	}
	if fs := box.fwd.Status(); fs.State != "blocked" {
		t.Fatalf("forwarder state %q with its only study blocked, want blocked", fs.State)
	}
	// The measurement window of the report: 10 s from the start.
	wait.For(t, 20*time.Second, "10 s of forwarding", func() bool { return time.Since(started) >= 10*time.Second })
	n := hub.requests.Load() - before
	t.Logf("blocked after %v; %d requests to the hub in the first 10 s", blockedAfter.Round(time.Millisecond), n)
	// A manifest, a create and an append per instance, the confirming manifest, then
	// manifests after 0.5, 1, 2 and 4 s of back-off: 9 requests; 15 leaves room.
	if n > 15 {
		t.Fatalf("%d requests in 10 s on a receipt that stays incomplete, want at most 15", n)
	}
	if box.queueLen() != 1 {
		t.Fatal("a study the hub never confirmed whole left the box's queue")
	}
}

// TestQuarantineSurvivesCrashBeforeIndexing stops the hub after it moved a clashing
// copy into quarantine and before it indexed it, as a power cut there would: the box
// completes the upload again and the hub finds the copy where it left it.
func TestQuarantineSurvivesCrashBeforeIndexing(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	ctx := context.Background()
	send := func(c *client, in pacstest.Instance, last bool) uploadState {
		t.Helper()
		up, err := c.create(ctx, spool.Instance{SOPInstanceUID: in.SOPInstanceUID, StudyUID: in.StudyUID, Size: in.Size, SHA256: in.SHA256})
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(in.Path)
		if err != nil {
			t.Fatal(err)
		}
		st, _, err := c.appendChunk(ctx, in.SOPInstanceUID, up.url, 0, data, last, false)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	first, err := pacstest.WriteStudy(t.TempDir(), pacstest.StudySpec{StudyUID: uid(1605), Instances: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	send(boxClient(t, hub, p.enroll(t, "AMB-B")), first[0], true)
	second, err := pacstest.WriteStudy(t.TempDir(), pacstest.StudySpec{StudyUID: uid(1605), Instances: 1, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	in := second[0]
	tlsA := p.enroll(t, "AMB-A")
	st := send(boxClient(t, hub, tlsA), in, false)
	if st.offset != in.Size || st.complete {
		t.Fatalf("every byte sent, not completed: %+v", st)
	}
	// The crash: the hub had moved the copy into quarantine, and indexed nothing.
	hub.stop()
	archive := filepath.Join(hub.dir, "archive")
	qpath, err := quarantinePath(archive, "AMB-A", in.SOPInstanceUID, in.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := moveInto(partialPath(archive, filepath.Base(st.url)), qpath); err != nil {
		t.Fatal(err)
	}
	hub.start()
	a := boxClient(t, hub, tlsA)
	done, _, err := a.appendChunk(ctx, in.SOPInstanceUID, st.url, in.Size, nil, true, false)
	if err != nil || !done.complete {
		t.Fatalf("completing after the crash: %+v, %v", done, err)
	}
	hs := hubStatus(t, hub)
	if hs.QuarantinedTotal != 1 || hs.Quarantined[0].Path != qpath || hs.Quarantined[0].SHA256 != in.SHA256 {
		t.Fatalf("quarantine after the crash: %+v", hs.Quarantined)
	}
	if got, err := pacstest.Describe(qpath); err != nil || got.SHA256 != in.SHA256 {
		t.Fatalf("quarantined file %+v, %v", got, err)
	}
	checkArchived(t, hub, first)
}
