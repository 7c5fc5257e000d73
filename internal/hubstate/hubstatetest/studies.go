package hubstatetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/internal/hubstate"
)

func sopUID(n int) string   { return fmt.Sprintf("1.2.826.0.1.3680043.10.1311.7.%d", n) }
func studyUID(n int) string { return fmt.Sprintf("1.2.826.0.1.3680043.10.1311.8.%d", n) }

func upload(id, device, sop, sha string, length int64) hubstate.Upload {
	return hubstate.Upload{ID: id, Device: device, SOPInstanceUID: sop, StudyUID: studyUID(1), Length: length,
		SHA256: sha, CreatedAt: epoch}
}

func instance(u hubstate.Upload) hubstate.Instance {
	return hubstate.Instance{SOPInstanceUID: u.SOPInstanceUID, StudyUID: u.StudyUID, Device: u.Device, Size: u.Length,
		SHA256: u.SHA256, Path: "/archive/" + u.SOPInstanceUID + ".dcm", ReceivedAt: epoch, VerifiedAt: epoch.Add(time.Second)}
}

// archive creates an upload, advances it to its end and archives its instance.
func archive(t *testing.T, s hubstate.Store, u hubstate.Upload, owed bool) hubstate.Archived {
	t.Helper()
	got, err := s.CreateUpload(bg, u)
	noErr(t, "create upload", err)
	if !got.Complete {
		_, err = s.AdvanceUpload(bg, u.ID, got.Offset, u.Length)
		noErr(t, "advance upload", err)
	}
	a, err := s.ArchiveInstance(bg, u.ID, instance(u), owed)
	noErr(t, "archive instance", err)
	return a
}

func manifest(study int, device string, at time.Time, sops ...hubstate.Upload) hubstate.Manifest {
	m := hubstate.Manifest{StudyUID: studyUID(study), Device: device, Modality: "CT", Instances: map[string]string{}, At: at}
	for _, u := range sops {
		m.Instances[u.SOPInstanceUID] = u.SHA256
	}
	return m
}

func testUploadResumesWhereItWas(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	u := upload("u1", "AMB-1", sopUID(1), "aa", 100)
	got, err := s.CreateUpload(bg, u)
	if err != nil || got.Offset != 0 || got.Complete {
		t.Fatalf("new upload: %+v, %v", got, err)
	}
	_, err = s.AdvanceUpload(bg, "u1", 0, 40)
	noErr(t, "advance", err)
	again := u
	again.CreatedAt = epoch.Add(time.Hour)
	got, err = s.CreateUpload(bg, again)
	if err != nil || got.Offset != 40 || !got.CreatedAt.Equal(epoch) {
		t.Fatalf("upload created again: %+v, %v; want the first one at offset 40", got, err)
	}
	if got, err := s.Upload(bg, "u1"); err != nil || got.Offset != 40 || got.SHA256 != "aa" {
		t.Fatalf("upload: %+v, %v", got, err)
	}
	noErr(t, "drop", s.DropUpload(bg, "u1"))
	_, err = s.Upload(bg, "u1")
	wantErr(t, "dropped upload", err, hubstate.ErrNotFound)
	noErr(t, "drop an unknown upload", s.DropUpload(bg, "u1"))
}

// testAdvanceIsCompareAndSet appends the same chunk many times at once, as a box
// re-sending after a timeout, or two hubs, would: the offset moves once.
func testAdvanceIsCompareAndSet(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	_, err := s.CreateUpload(bg, upload("u2", "AMB-1", sopUID(2), "bb", 100))
	noErr(t, "create", err)
	_, err = s.AdvanceUpload(bg, "u2", 0, 10)
	noErr(t, "advance", err)
	_, err = s.AdvanceUpload(bg, "u2", 0, 10)
	var moved *hubstate.OffsetError
	if !errors.As(err, &moved) || !errors.Is(err, hubstate.ErrOffsetMoved) || moved.Upload.Offset != 10 {
		t.Fatalf("stale append: %v, want an OffsetError at 10", err)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.AdvanceUpload(bg, "u2", 10, 20); err == nil {
				won.Add(1)
			} else if !errors.Is(err, hubstate.ErrOffsetMoved) {
				t.Errorf("racing append: %v", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of 8 racing appends moved the offset, want 1", won.Load())
	}
	if _, err := s.AdvanceUpload(bg, "u2", 20, 101); err == nil || errors.Is(err, hubstate.ErrOffsetMoved) {
		t.Fatalf("append past Upload-Length: %v, want a refusal that is not an offset mismatch", err)
	}
	if u, _ := s.Upload(bg, "u2"); u.Offset != 20 {
		t.Fatalf("offset %d after refused appends, want 20", u.Offset)
	}
	_, err = s.AdvanceUpload(bg, "no-such-upload", 0, 1)
	wantErr(t, "append to an unknown upload", err, hubstate.ErrNotFound)
}

func testArchiveCompletesStudy(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	a := upload("a", "AMB-1", sopUID(10), "a1", 10)
	b := upload("b", "AMB-1", sopUID(11), "b1", 20)
	sp, err := s.RecordManifest(bg, manifest(1, "AMB-1", epoch, a, b))
	if err != nil || sp.Milestones != (hubstate.Milestones{}) || len(sp.Expected) != 2 {
		t.Fatalf("manifest before any instance: %+v, %v", sp, err)
	}
	got := archive(t, s, a, true)
	if got.Duplicate || !got.InStudy || got.Study.Milestones != (hubstate.Milestones{}) {
		t.Fatalf("first of two instances: %+v", got)
	}
	got = archive(t, s, b, true)
	if !got.InStudy || !got.Study.Received || !got.Study.Verified || got.Study.Delivered || got.Study.VerifiedAt.IsZero() {
		t.Fatalf("last instance: %+v, want received and verified, not delivered", got)
	}
	if u, _ := s.Upload(bg, "b"); !u.Complete || u.Offset != u.Length {
		t.Fatalf("upload after archiving: %+v", u)
	}
	inst, err := s.Instance(bg, sopUID(11))
	if err != nil || inst.SHA256 != "b1" || inst.Path == "" {
		t.Fatalf("archived instance: %+v, %v", inst, err)
	}
	_, err = s.Instance(bg, sopUID(99))
	wantErr(t, "unknown instance", err, hubstate.ErrNotFound)
	v, err := s.Study(bg, "AMB-1", studyUID(1))
	if err != nil || len(v.Archived) != 2 || v.Archived[sopUID(10)].SHA256 != "a1" {
		t.Fatalf("study view: %+v, %v", v, err)
	}
	_, err = s.Study(bg, "AMB-1", studyUID(99))
	wantErr(t, "unknown study", err, hubstate.ErrNotFound)
	due, pending, err := s.DueDeliveries(bg, epoch, 10)
	if err != nil || pending != 2 || len(due) != 2 {
		t.Fatalf("deliveries owed: %d due of %d, %v", len(due), pending, err)
	}
	// An instance the embedded archive holds for good owes no delivery, and its study
	// is delivered once verified.
	c := upload("c", "AMB-1", sopUID(12), "c1", 5)
	c.StudyUID = studyUID(2)
	_, err = s.RecordManifest(bg, manifest(2, "AMB-1", epoch, c))
	noErr(t, "manifest", err)
	inst = instance(c)
	inst.DeliveredAt = inst.VerifiedAt
	_, err = s.CreateUpload(bg, c)
	noErr(t, "create", err)
	_, err = s.AdvanceUpload(bg, "c", 0, 5)
	noErr(t, "advance", err)
	got, err = s.ArchiveInstance(bg, "c", inst, false)
	if err != nil || !got.Study.Verified || !got.Study.Delivered {
		t.Fatalf("archive-only instance: %+v, %v", got, err)
	}
	if _, pending, _ := s.DueDeliveries(bg, epoch, 10); pending != 2 {
		t.Fatalf("%d deliveries owed after an archive-only instance, want 2", pending)
	}
}

func testDuplicateKeptOnce(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	a := upload("first", "AMB-1", sopUID(20), "d1", 10)
	archive(t, s, a, true)
	// The same instance again (a box restored from backup): the new upload starts
	// complete and nothing more is owed.
	again := a
	again.ID = "second"
	got, err := s.CreateUpload(bg, again)
	if err != nil || !got.Complete || got.Offset != got.Length {
		t.Fatalf("upload of an archived instance: %+v, %v", got, err)
	}
	// Two uploads that both finished before either was archived: the second is a
	// duplicate.
	third := a
	third.ID = "third"
	noErr(t, "drop", s.DropUpload(bg, "second"))
	_, err = s.ArchiveInstance(bg, "third", instance(third), true)
	wantErr(t, "archive for an unknown upload", err, hubstate.ErrNotFound)
	got2, err := s.ArchiveInstance(bg, "first", instance(a), true)
	if err != nil || !got2.Duplicate {
		t.Fatalf("archiving the same instance again: %+v, %v", got2, err)
	}
	if _, pending, _ := s.DueDeliveries(bg, epoch, 10); pending != 1 {
		t.Fatalf("%d deliveries owed for one instance archived twice", pending)
	}
}

// testClashIsQuarantined uploads another instance under an archived SOP Instance
// UID from a second box, as a careless or hostile box would: the first copy stays
// archived and owed to the PACS, the second is held in quarantine, counts for its
// own box's study but is never delivered, and neither box's upload is refused.
func testClashIsQuarantined(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	a := upload("orig", "AMB-1", sopUID(30), "e1", 10)
	_, err := s.RecordManifest(bg, manifest(1, "AMB-1", epoch, a))
	noErr(t, "manifest of the first box", err)
	archive(t, s, a, true)
	other := upload("other", "AMB-2", sopUID(30), "e2", 10)
	_, err = s.RecordManifest(bg, manifest(1, "AMB-2", epoch, other))
	noErr(t, "manifest of the second box", err)
	got, err := s.CreateUpload(bg, other)
	if err != nil || got.Complete {
		t.Fatalf("upload of another instance under an archived UID: %+v, %v; want it open", got, err)
	}
	_, err = s.AdvanceUpload(bg, "other", 0, 10)
	noErr(t, "advance", err)
	_, err = s.ArchiveInstance(bg, "other", instance(other), true)
	var conflict *hubstate.ConflictError
	if !errors.As(err, &conflict) || !errors.Is(err, hubstate.ErrConflict) || conflict.Archived.SHA256 != "e1" {
		t.Fatalf("archiving another instance under an archived UID: %v, want a ConflictError naming e1", err)
	}
	q := instance(other)
	q.ClashSHA256, q.ClashDevice = conflict.Archived.SHA256, conflict.Archived.Device
	res, err := s.QuarantineInstance(bg, "other", q)
	if err != nil || res.Duplicate || !res.InStudy || !res.Study.Verified || res.Study.Device != "AMB-2" {
		t.Fatalf("quarantine: %+v, %v; want the second box's study verified", res, err)
	}
	if u, _ := s.Upload(bg, "other"); !u.Complete {
		t.Fatalf("quarantined upload not complete: %+v", u)
	}
	if inst, _ := s.Instance(bg, sopUID(30)); inst.SHA256 != "e1" || inst.Device != "AMB-1" || inst.Quarantined {
		t.Fatalf("the clash changed the archived instance: %+v", inst)
	}
	held, total, err := s.Quarantine(bg, 10)
	if err != nil || total != 1 || len(held) != 1 || !held[0].Quarantined || held[0].SHA256 != "e2" ||
		held[0].Device != "AMB-2" || held[0].ClashSHA256 != "e1" || held[0].ClashDevice != "AMB-1" {
		t.Fatalf("quarantine: %+v of %d, %v", held, total, err)
	}
	if _, pending, _ := s.DueDeliveries(bg, epoch, 10); pending != 1 {
		t.Fatalf("%d deliveries owed, want only the archived copy's", pending)
	}
	// Each box sees its own copy held for its own study.
	for dev, sha := range map[string]string{"AMB-1": "e1", "AMB-2": "e2"} {
		v, err := s.Study(bg, dev, studyUID(1))
		if err != nil || v.Archived[sopUID(30)].SHA256 != sha {
			t.Fatalf("study of %s: %+v, %v; want its own copy %s held", dev, v, err, sha)
		}
	}
	// The same copy again starts complete and is kept once.
	again := other
	again.ID = "other-again"
	if got, err := s.CreateUpload(bg, again); err != nil || !got.Complete {
		t.Fatalf("upload of a quarantined copy again: %+v, %v; want it complete", got, err)
	}
	res, err = s.QuarantineInstance(bg, "other-again", q)
	if err != nil || !res.Duplicate {
		t.Fatalf("quarantining the same copy again: %+v, %v", res, err)
	}
	if _, total, _ := s.Quarantine(bg, 0); total != 1 {
		t.Fatalf("%d copies in quarantine, want 1", total)
	}
	_, err = s.QuarantineInstance(bg, "no-such-upload", q)
	wantErr(t, "quarantine for an unknown upload", err, hubstate.ErrNotFound)
	// A delivery of the archived copy completes the first box's study, and never
	// the second's, whose copy waits for an operator.
	done, err := s.RecordDeliveries(bg, []hubstate.DeliveryOutcome{{SOPInstanceUID: sopUID(30), At: epoch}})
	noErr(t, "record delivery", err)
	for _, sp := range done {
		if sp.Delivered != (sp.Device == "AMB-1") {
			t.Fatalf("delivery of the archived copy: %+v", sp)
		}
	}
}

// testStudiesScopedToBox sends manifests for the same Study Instance UID from two
// boxes: each box reads and changes only its own record.
func testStudiesScopedToBox(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	a := upload("a", "AMB-1", sopUID(80), "j1", 10)
	foreign := upload("b", "AMB-2", sopUID(81), "j2", 10)
	_, err := s.RecordManifest(bg, manifest(1, "AMB-1", epoch, a))
	noErr(t, "manifest of the first box", err)
	_, err = s.RecordManifest(bg, manifest(1, "AMB-2", epoch.Add(time.Minute), foreign))
	noErr(t, "manifest of the second box", err)
	archive(t, s, a, false)
	v, err := s.Study(bg, "AMB-1", studyUID(1))
	if err != nil || len(v.Expected) != 1 || v.Expected[sopUID(80)] != "j1" || v.Device != "AMB-1" || v.VerifiedAt.IsZero() {
		t.Fatalf("first box's study: %+v, %v; want only its own instance, verified", v, err)
	}
	v, err = s.Study(bg, "AMB-2", studyUID(1))
	if err != nil || len(v.Expected) != 1 || v.Expected[sopUID(81)] != "j2" || v.Device != "AMB-2" || len(v.Archived) != 0 {
		t.Fatalf("second box's study: %+v, %v", v, err)
	}
	_, err = s.Study(bg, "AMB-3", studyUID(1))
	wantErr(t, "a study another box sent", err, hubstate.ErrNotFound)
	recent, err := s.RecentStudies(bg, 10)
	if err != nil || len(recent) != 2 || recent[0].Device != "AMB-2" || recent[1].Device != "AMB-1" {
		t.Fatalf("recent studies: %+v, %v; want both boxes' records, latest first", recent, err)
	}
}

func testManifestGrowthReopensStudy(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	a := upload("a", "AMB-1", sopUID(40), "f1", 10)
	b := upload("b", "AMB-1", sopUID(41), "f2", 10)
	archive(t, s, a, false)
	archive(t, s, b, false)
	// A manifest naming only archived instances completes the study by itself.
	sp, err := s.RecordManifest(bg, manifest(1, "AMB-1", epoch, a))
	if err != nil || !sp.Verified || !sp.Received {
		t.Fatalf("manifest of an archived instance: %+v, %v", sp, err)
	}
	sp, err = s.RecordManifest(bg, manifest(1, "AMB-1", epoch.Add(time.Minute), a))
	if err != nil || sp.Verified || !sp.ManifestAt.Equal(epoch) {
		t.Fatalf("the same manifest again: %+v, %v; want no new milestone and the first manifest time", sp, err)
	}
	c := upload("c", "AMB-1", sopUID(42), "f3", 10)
	sp, err = s.RecordManifest(bg, manifest(1, "AMB-1", epoch, a, b, c))
	if err != nil || sp.Verified || !sp.VerifiedAt.IsZero() || len(sp.Expected) != 3 {
		t.Fatalf("grown manifest: %+v, %v; want the study open again", sp, err)
	}
	got := archive(t, s, c, false)
	if !got.Study.Verified || got.Study.VerifiedAt.IsZero() {
		t.Fatalf("instance completing the grown study: %+v", got)
	}
}

func testDeliveryRetriesThenCompletes(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	a := upload("a", "AMB-1", sopUID(50), "g1", 10)
	b := upload("b", "AMB-1", sopUID(51), "g2", 10)
	_, err := s.RecordManifest(bg, manifest(1, "AMB-1", epoch, a, b))
	noErr(t, "manifest", err)
	archive(t, s, a, true)
	archive(t, s, b, true)
	retryAt := epoch.Add(time.Minute)
	done, err := s.RecordDeliveries(bg, []hubstate.DeliveryOutcome{
		{SOPInstanceUID: a.SOPInstanceUID, At: epoch, Err: "PACS refused: 0xA700"},
		{SOPInstanceUID: b.SOPInstanceUID, At: epoch, ForgetPath: true},
	})
	if err != nil || len(done) != 1 || done[0].Delivered {
		t.Fatalf("half delivered: %+v, %v", done, err)
	}
	_, err = s.RecordDeliveries(bg, []hubstate.DeliveryOutcome{{SOPInstanceUID: a.SOPInstanceUID, At: epoch, Err: "timeout", RetryAt: retryAt}})
	noErr(t, "record a second failure", err)
	inst, _ := s.Instance(bg, a.SOPInstanceUID)
	if inst.Attempts != 2 || inst.LastError != "timeout" || !inst.NextAttempt.Equal(retryAt) || !inst.DeliveredAt.IsZero() {
		t.Fatalf("failed instance: %+v", inst)
	}
	if inst, _ := s.Instance(bg, b.SOPInstanceUID); inst.Path != "" || inst.DeliveredAt.IsZero() || inst.Attempts != 1 {
		t.Fatalf("delivered, pruned instance: %+v", inst)
	}
	due, pending, err := s.DueDeliveries(bg, retryAt.Add(-time.Second), 10)
	if err != nil || len(due) != 0 || pending != 1 {
		t.Fatalf("before its retry time: %d due of %d, %v", len(due), pending, err)
	}
	due, _, _ = s.DueDeliveries(bg, retryAt, 10)
	if len(due) != 1 || due[0].SOPInstanceUID != a.SOPInstanceUID {
		t.Fatalf("at its retry time: %+v", due)
	}
	done, err = s.RecordDeliveries(bg, []hubstate.DeliveryOutcome{{SOPInstanceUID: a.SOPInstanceUID, At: retryAt}})
	if err != nil || len(done) != 1 || !done[0].Delivered || !done[0].DeliveredAt.Equal(retryAt) {
		t.Fatalf("last delivery: %+v, %v; want the study delivered at %v", done, err, retryAt)
	}
	if _, pending, _ := s.DueDeliveries(bg, retryAt, 10); pending != 0 {
		t.Fatalf("%d deliveries still owed", pending)
	}
	done, _ = s.RecordDeliveries(bg, []hubstate.DeliveryOutcome{{SOPInstanceUID: a.SOPInstanceUID, At: retryAt}})
	if len(done) != 1 || done[0].Delivered {
		t.Fatalf("a repeated confirmation announced the study again: %+v", done)
	}
	_, err = s.RecordDeliveries(bg, []hubstate.DeliveryOutcome{{SOPInstanceUID: sopUID(99), At: epoch}})
	wantErr(t, "outcome for an unknown instance", err, hubstate.ErrNotFound)
}

func testRecentStudiesLatestFirst(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	for i := range 5 {
		u := upload(fmt.Sprint(i), "AMB-1", sopUID(60+i), "h", 1)
		_, err := s.RecordManifest(bg, manifest(10+i, "AMB-1", epoch.Add(time.Duration(i)*time.Minute), u))
		noErr(t, "manifest", err)
	}
	got, err := s.RecentStudies(bg, 3)
	noErr(t, "recent studies", err)
	var uids []string
	for _, v := range got {
		uids = append(uids, v.StudyUID)
	}
	if fmt.Sprint(uids) != fmt.Sprint([]string{studyUID(14), studyUID(13), studyUID(12)}) {
		t.Fatalf("recent studies %v", uids)
	}
}

// testEverythingSurvivesReopen closes the state after each kind of write and opens
// it again: what a method acknowledged is still there.
func testEverythingSurvivesReopen(t *testing.T, open Opener) {
	s, err := open()
	noErr(t, "open", err)
	noErr(t, "issue", s.IssueCode(bg, code("AMB-7", "h7")))
	_, err = s.RedeemCode(bg, "h7", epoch, certificate("77"))
	noErr(t, "redeem", err)
	noErr(t, "issue", s.IssueCode(bg, code("AMB-8", "h8")))
	noErr(t, "revoke", s.RevokeDevice(bg, "AMB-8", epoch))
	a := upload("a", "AMB-7", sopUID(70), "i1", 10)
	b := upload("b", "AMB-7", sopUID(71), "i2", 10)
	_, err = s.RecordManifest(bg, manifest(1, "AMB-7", epoch, a, b))
	noErr(t, "manifest", err)
	archive(t, s, a, true)
	_, err = s.CreateUpload(bg, b)
	noErr(t, "create", err)
	_, err = s.AdvanceUpload(bg, "b", 0, 4)
	noErr(t, "advance", err)
	clash := upload("c", "AMB-8", sopUID(70), "i3", 10)
	_, err = s.CreateUpload(bg, clash)
	noErr(t, "create a clashing upload", err)
	_, err = s.QuarantineInstance(bg, "c", instance(clash))
	noErr(t, "quarantine", err)
	noErr(t, "close", s.Close())

	s = mustOpen(t, open)
	if dev, err := s.Device(bg, "AMB-7"); err != nil || dev.State != hubstate.StateActive || dev.Serial != "77" {
		t.Fatalf("enrolled device after reopening: %+v, %v", dev, err)
	}
	if dev, _ := s.Device(bg, "AMB-8"); dev.State != hubstate.StateRevoked {
		t.Fatalf("revoked device after reopening: %+v", dev)
	}
	_, err = s.RedeemCode(bg, "h7", epoch, certificate("78"))
	wantErr(t, "used code after reopening", err, hubstate.ErrCodeUsed)
	if u, err := s.Upload(bg, "b"); err != nil || u.Offset != 4 {
		t.Fatalf("upload after reopening: %+v, %v", u, err)
	}
	if v, err := s.Study(bg, "AMB-7", studyUID(1)); err != nil || len(v.Archived) != 1 || len(v.Expected) != 2 {
		t.Fatalf("study after reopening: %+v, %v", v, err)
	}
	if due, pending, err := s.DueDeliveries(bg, epoch, 10); err != nil || pending != 1 || len(due) != 1 {
		t.Fatalf("deliveries after reopening: %d due of %d, %v", len(due), pending, err)
	}
	if held, total, err := s.Quarantine(bg, 10); err != nil || total != 1 || held[0].SHA256 != "i3" {
		t.Fatalf("quarantine after reopening: %+v of %d, %v", held, total, err)
	}
}
