package send_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/send"
	"lifeline/dicom/spool"
	"lifeline/internal/durable"
	"lifeline/internal/peers"
)

func startBox(t *testing.T) (string, *spool.Spool) {
	t.Helper()
	dir := t.TempDir()
	store, err := durable.Open(filepath.Join(dir, "state.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sp, err := spool.Open(filepath.Join(dir, "spool"), store, spool.Config{MinFreeBytes: 1 << 20}, log)
	if err != nil {
		t.Fatal(err)
	}
	scp, err := dimse.NewSCP(dimse.SCPConfig{}, sp, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- scp.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; store.Close() })
	return ln.Addr().String(), sp
}

func write(t *testing.T, p string, data []byte) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSendFolderSkipsWithReasons sends a folder of two studies in several transfer
// syntaxes plus files that must be skipped, and checks the box holds exactly the
// instances' data sets and the report says what happened.
func TestSendFolderSkipsWithReasons(t *testing.T) {
	addr, sp := startBox(t)
	dir := t.TempDir()
	syntaxes := []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian, dicom.JPEGLSLossless, dicom.DeflatedExplicitVRLittleEndian, dicom.RLELossless}
	want := map[string][]byte{}
	for i, ts := range syntaxes {
		study := "2.25.11"
		if i >= 3 {
			study = "2.25.12"
		}
		spec := phantom.Spec{StudyUID: study, SOPInstanceUID: phantom.UID(study, i), TransferSyntaxUID: ts, Fill: byte(i)}
		write(t, filepath.Join(dir, "series", "IM"+string(rune('A'+i))), phantom.File(spec))
		want[spec.SOPInstanceUID] = phantom.Dataset(spec)
	}
	write(t, filepath.Join(dir, "notes.txt"), []byte("radiology report draft"))
	broken := phantom.File(phantom.Spec{SOPInstanceUID: "2.25.99"})
	write(t, filepath.Join(dir, "broken.dcm"), broken[:len(broken)-20])

	coll, err := send.Collect([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(coll.Instances) != 5 || len(coll.Skipped) != 2 {
		t.Fatalf("collected %d instances, skipped %+v", len(coll.Instances), coll.Skipped)
	}
	var out bytes.Buffer
	rep := send.NewReport(&out, false, coll.Instances)
	if err := send.Send(context.Background(), coll.Instances, send.Options{Addr: addr, CallingAE: "USBSTICK", CalledAE: "LIFELINE"}, rep.Add); err != nil {
		t.Fatal(err)
	}
	rep.Summary(coll.Skipped)
	if rep.Failed() {
		t.Fatalf("send failed:\n%s", out.String())
	}
	for sop, ds := range want {
		inst, err := sp.Instance(sop)
		if err != nil {
			t.Fatalf("%s not in the spool: %v", sop, err)
		}
		f, err := dicom.OpenFile(inst.Path)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(inst.Path)
		if !bytes.Equal(data[f.DatasetOffset:], ds) {
			t.Errorf("%s: spooled data set differs from the file's", sop)
		}
	}
	summary := out.String()
	for _, s := range []string{"sent 5 instances of 2 studies", "notes.txt: not a DICOM Part 10 file", "broken.dcm: data set does not parse"} {
		if !strings.Contains(summary, s) {
			t.Errorf("summary lacks %q:\n%s", s, summary)
		}
	}
}

// TestSendDICOMDIR builds a CD-style folder with DCMTK's dcmmkdir and sends it
// through its DICOMDIR.
func TestSendDICOMDIR(t *testing.T) {
	dcmmkdir := peers.Need(t, "dcmmkdir")[0]
	addr, sp := startBox(t)
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		spec := phantom.Spec{StudyUID: "2.25.21", SOPInstanceUID: phantom.UID("2.25.21", i), Fill: byte(i)}
		write(t, filepath.Join(dir, "DICOM", "ST1", "IM"+string(rune('0'+i))), phantom.File(spec))
	}
	cmd := exec.Command(dcmmkdir, "+r", "-Pgp", "+I", "+id", dir, "+D", filepath.Join(dir, "DICOMDIR"), "DICOM")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dcmmkdir: %v\n%s", err, out)
	}
	coll, err := send.Collect([]string{filepath.Join(dir, "DICOMDIR")})
	if err != nil {
		t.Fatal(err)
	}
	if len(coll.Instances) != 3 || len(coll.Skipped) != 0 {
		t.Fatalf("DICOMDIR gave %d instances, skipped %+v", len(coll.Instances), coll.Skipped)
	}
	var outcomes []send.Outcome
	if err := send.Send(context.Background(), coll.Instances, send.Options{Addr: addr, CallingAE: "CDROM", CalledAE: "LIFELINE"},
		func(o send.Outcome) { outcomes = append(outcomes, o) }); err != nil {
		t.Fatal(err)
	}
	for _, o := range outcomes {
		if !o.Sent() {
			t.Errorf("%s: %v", o.Instance.Path, o.Err)
		}
	}
	n := 0
	sp.Instances(func(spool.Instance) error { n++; return nil })
	if n != 3 {
		t.Errorf("spool holds %d instances, want 3", n)
	}
}

// TestSendReportsRefusals sends to a box that is full: every instance fails with
// its status, and the report says so.
func TestSendReportsRefusals(t *testing.T) {
	dir := t.TempDir()
	store, _ := durable.Open(filepath.Join(dir, "s.db"), 0)
	defer store.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sp, _ := spool.Open(filepath.Join(dir, "spool"), store, spool.Config{MinFreeBytes: 1 << 62}, log)
	scp, _ := dimse.NewSCP(dimse.SCPConfig{}, sp, log, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go scp.Serve(ctx, ln)
	write(t, filepath.Join(dir, "in", "a.dcm"), phantom.File(phantom.Spec{}))
	coll, _ := send.Collect([]string{filepath.Join(dir, "in")})
	var out bytes.Buffer
	rep := send.NewReport(&out, false, coll.Instances)
	send.Send(context.Background(), coll.Instances, send.Options{Addr: ln.Addr().String(), CallingAE: "X", CalledAE: "LIFELINE"}, rep.Add)
	rep.Summary(nil)
	if !rep.Failed() || !strings.Contains(out.String(), "0xA700 (out of resources)") {
		t.Errorf("report:\n%s", out.String())
	}
}
