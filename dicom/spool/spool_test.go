package spool

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/phantom"
	"lifeline/internal/durable"
)

type logBuf struct{ strings.Builder }

func open(t *testing.T, dir string, cfg Config) (*Spool, *durable.Store, *logBuf) {
	t.Helper()
	store, err := durable.Open(filepath.Join(dir, "state.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = 1 << 20
	}
	lb := &logBuf{}
	s, err := Open(filepath.Join(dir, "spool"), store, cfg, slog.New(slog.NewTextHandler(lb, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, store, lb
}

func put(t *testing.T, s *Spool, spec phantom.Spec) error {
	t.Helper()
	if spec.TransferSyntaxUID == "" {
		spec.TransferSyntaxUID = dicom.ExplicitVRLittleEndian
	}
	if spec.SOPClassUID == "" {
		spec.SOPClassUID = dicom.CTImageStorage
	}
	w, err := s.Begin(dicom.Incoming{SOPClassUID: spec.SOPClassUID, SOPInstanceUID: spec.SOPInstanceUID,
		TransferSyntaxUID: spec.TransferSyntaxUID, CallingAE: "CT1"})
	if err != nil {
		return err
	}
	ds := phantom.Dataset(spec)
	// Write in uneven pieces, as PDVs arrive.
	for len(ds) > 0 {
		n := min(len(ds), 97)
		if _, err := w.Write(ds[:n]); err != nil {
			return err
		}
		ds = ds[n:]
	}
	return w.Commit()
}

func queued(t *testing.T, s *Spool) []Study {
	t.Helper()
	items, err := s.Queue().Peek(0)
	if err != nil {
		t.Fatal(err)
	}
	var out []Study
	for _, it := range items {
		var st Study
		if err := json.Unmarshal(it.Value, &st); err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

func TestQuietPeriodQueuesStudyThenLateInstancesAgain(t *testing.T) {
	s, _, _ := open(t, t.TempDir(), Config{QuietPeriod: time.Minute})
	for i := 0; i < 3; i++ {
		if err := put(t, s, phantom.Spec{StudyUID: "2.25.1", SOPInstanceUID: phantom.UID("2.25.1", i)}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if n, _ := s.FlushReady(now.Add(30 * time.Second)); n != 0 {
		t.Fatalf("study queued before its quiet period ended")
	}
	if n, _ := s.FlushReady(now.Add(61 * time.Second)); n != 1 {
		t.Fatalf("study not queued after its quiet period")
	}
	if n, _ := s.FlushReady(now.Add(120 * time.Second)); n != 0 {
		t.Fatalf("study queued twice")
	}
	q := queued(t, s)
	if len(q) != 1 || len(q[0].Instances) != 3 || q[0].PatientID != "PAT001" || q[0].CallingAE != "CT1" {
		t.Fatalf("queued %+v", q)
	}
	for _, in := range q[0].Instances {
		if in.SHA256 == "" || in.Size == 0 || !filepath.IsAbs(in.Path) || in.TransferSyntax != dicom.ExplicitVRLittleEndian {
			t.Errorf("instance record %+v", in)
		}
	}
	// A late instance makes the study pending again, with only the new instance.
	if err := put(t, s, phantom.Spec{StudyUID: "2.25.1", SOPInstanceUID: "2.25.1.99"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.FlushReady(time.Now().Add(61 * time.Second)); n != 1 {
		t.Fatalf("late instance not queued")
	}
	q = queued(t, s)
	if len(q) != 2 || len(q[1].Instances) != 1 || q[1].Instances[0].SOPInstanceUID != "2.25.1.99" {
		t.Fatalf("second record %+v", q[1:])
	}
	rs := s.RecentStudies(5)
	if len(rs) != 1 || rs[0].Instances != 4 || !rs[0].Queued {
		t.Errorf("recent studies %+v", rs)
	}
}

func TestRecoveryRemovesPartialsAndIndexesCommittedFiles(t *testing.T) {
	dir := t.TempDir()
	s, store, _ := open(t, dir, Config{})
	if err := put(t, s, phantom.Spec{StudyUID: "2.25.1", SOPInstanceUID: "2.25.1.1"}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	root := filepath.Join(dir, "spool")
	// What a crash can leave: a temporary file being written, and a file renamed
	// into place whose index update never happened.
	os.WriteFile(filepath.Join(root, ".partial-12345"), []byte("half an instance"), 0o600)
	spec := phantom.Spec{StudyUID: "2.25.2", SOPInstanceUID: "2.25.2.1"}
	os.MkdirAll(filepath.Join(root, "2.25.2"), 0o700)
	os.WriteFile(filepath.Join(root, "2.25.2", "2.25.2.1.dcm"), phantom.File(spec), 0o600)
	os.WriteFile(filepath.Join(root, "2.25.2", "junk.dcm"), []byte("not dicom at all"), 0o600)

	s, _, logs := open(t, dir, Config{QuietPeriod: time.Second})
	if _, err := os.Stat(filepath.Join(root, ".partial-12345")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file survived recovery")
	}
	in, err := s.Instance("2.25.2.1")
	if err != nil {
		t.Fatalf("committed but unindexed file not indexed: %v", err)
	}
	if in.StudyUID != "2.25.2" || in.Size == 0 {
		t.Errorf("re-indexed %+v", in)
	}
	if _, err := os.Stat(filepath.Join(root, "2.25.2", "junk.dcm")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unparseable file left among the instances")
	}
	if entries, _ := os.ReadDir(filepath.Join(root, corruptDir)); len(entries) != 1 {
		t.Errorf("unparseable file not kept aside in %s", corruptDir)
	}
	if !strings.Contains(logs.String(), "spool recovered after an unclean stop") {
		t.Errorf("no recovery log line:\n%s", logs.String())
	}
	if n, _ := s.FlushReady(time.Now().Add(time.Hour)); n != 2 {
		t.Errorf("%d studies queued after recovery, want 2", n)
	}
}

func TestForwardedFilesArePrunedOthersNever(t *testing.T) {
	s, _, _ := open(t, t.TempDir(), Config{RetainForwarded: time.Hour})
	for _, sop := range []string{"2.25.1.1", "2.25.1.2"} {
		if err := put(t, s, phantom.Spec{StudyUID: "2.25.1", SOPInstanceUID: sop}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := s.Instance("2.25.1.1")
	b, _ := s.Instance("2.25.1.2")
	if err := s.MarkForwarded("2.25.1.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkForwarded("2.25.404"); !errors.Is(err, durable.ErrNotFound) {
		t.Errorf("MarkForwarded of an unknown instance: %v", err)
	}
	if n, _ := s.prune(time.Now(), false); n != 0 {
		t.Fatalf("pruned before retention ended")
	}
	if n, _ := s.prune(time.Now().Add(2*time.Hour), false); n != 1 {
		t.Fatalf("forwarded instance not pruned after retention")
	}
	if _, err := os.Stat(a.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("forwarded file still on disk")
	}
	if _, err := os.Stat(b.Path); err != nil {
		t.Errorf("unforwarded file deleted: %v", err)
	}
	if _, err := s.Instance("2.25.1.1"); !errors.Is(err, durable.ErrNotFound) {
		t.Errorf("pruned instance still indexed")
	}
	// Urgent pruning (disk short) never touches what the hub does not have.
	if n, _ := s.prune(time.Now(), true); n != 0 {
		t.Errorf("urgent prune deleted %d unforwarded instances", n)
	}
}

func TestBeginRefusesWhenFull(t *testing.T) {
	s, _, _ := open(t, t.TempDir(), Config{MinFreeBytes: 1 << 62})
	err := put(t, s, phantom.Spec{SOPInstanceUID: "2.25.1"})
	if !errors.Is(err, dicom.ErrOutOfResources) {
		t.Fatalf("err = %v, want ErrOutOfResources", err)
	}
	if files := spoolFiles(t, s); len(files) != 0 {
		t.Errorf("refused instance left files: %v", files)
	}
}

func TestHostileUIDsStayInsideTheSpool(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := open(t, dir, Config{})
	spec := phantom.Spec{StudyUID: "../../etc", SOPInstanceUID: "../../passwd"}
	// Such UIDs are refused (0xA900) before anything is written; pathKey keeps a
	// UID from leaving the spool's directory all the same.
	if err := put(t, s, spec); !errors.Is(err, dicom.ErrSOPMismatch) {
		t.Fatalf("stored with %v, want ErrSOPMismatch", err)
	}
	if _, err := s.Instance("../../passwd"); err == nil {
		t.Errorf("instance indexed under ../../passwd")
	}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, ".dcm") {
			t.Errorf("file written for a refused instance: %s", p)
		}
		return nil
	})
	if k := pathKey("../../passwd"); strings.ContainsAny(k, "./") {
		t.Errorf("pathKey(../../passwd) = %q", k)
	}
}

var _ = io.Discard

// TestStudyRecordStaysSmall guards the cost of each commit: a CT study has thousands
// of instances, and rewriting a list of all of them per instance made commits O(n²).
func TestStudyRecordStaysSmall(t *testing.T) {
	s, store, _ := open(t, t.TempDir(), Config{QuietPeriod: time.Minute})
	for i := 0; i < 200; i++ {
		if err := put(t, s, phantom.Spec{StudyUID: "2.25.8", SOPInstanceUID: phantom.UID("2.25.8", i), Rows: 2, Columns: 2}); err != nil {
			t.Fatal(err)
		}
	}
	v, err := store.Get(studiesBucket, []byte("2.25.8"))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) > 512 {
		t.Errorf("study record is %d bytes after 200 instances", len(v))
	}
	if n, _ := s.FlushReady(time.Now().Add(2 * time.Minute)); n != 1 {
		t.Fatal("study not queued")
	}
	if q := queued(t, s); len(q) != 1 || len(q[0].Instances) != 200 {
		t.Fatalf("queued %d records", len(q))
	}
}
