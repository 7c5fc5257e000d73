package dimse_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/peers"
)

// TestInvalidUIDsRefusedWithA900 sends the UIDs of issue 16 item 11 to the real
// receiver: a 40,000-character SOP Instance UID, one with "../", and a valid request
// whose data set carries a "../" Study UID. Each is answered 0xA900, nothing of them
// stays in the spool (no file, no index entry), the association goes on, and DCMTK's
// storescu sending such a file is told the same.
func TestInvalidUIDsRefusedWithA900(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	ctx := context.Background()
	a, err := dimse.Dial(ctx, b.addr, "MODALITY", "LIFELINE", ctContexts, dimse.SCUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	long := "1." + strings.Repeat("2", 40000)
	for _, c := range []struct {
		name, sop string
		spec      phantom.Spec
	}{
		{"40,000-character SOP Instance UID", long, phantom.Spec{SOPInstanceUID: long}},
		{"SOP Instance UID with ../", "../1.2.3", phantom.Spec{SOPInstanceUID: "../1.2.3"}},
		{"Study UID with ../ in the data set", "2.25.61", phantom.Spec{SOPInstanceUID: "2.25.61", StudyUID: "../../2.25"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := phantom.Dataset(c.spec)
			st, err := a.StoreDataset(ctx, dicom.CTImageStorage, c.sop, dicom.ExplicitVRLittleEndian, bytes.NewReader(data), int64(len(data)))
			if err != nil || st != dimse.StatusDataSetMismatch {
				t.Fatalf("status 0x%04x, %v; want 0xA900", st, err)
			}
			if files := filesUnder(t, b.spool.Dir()); len(files) != 0 {
				t.Errorf("refused instance left %v in the spool", files)
			}
		})
	}
	if n := countInstances(t, b.spool); n != 0 {
		t.Errorf("spool indexed %d refused instances", n)
	}
	if got := counter(t, b.reg, "lifeline_dicom_failures_total", "invalid_uid"); got != 2 {
		t.Errorf("invalid_uid failures = %v, want 2 (the third is refused by the spool's data set check)", got)
	}
	if strings.Contains(b.logs.String(), strings.Repeat("2", 1000)) {
		t.Errorf("the log repeats the 40,000-character UID")
	}
	good := phantom.Dataset(phantom.Spec{SOPInstanceUID: "2.25.62"})
	if st, err := a.StoreDataset(ctx, dicom.CTImageStorage, "2.25.62", dicom.ExplicitVRLittleEndian, bytes.NewReader(good), int64(len(good))); err != nil || st != 0 {
		t.Fatalf("valid instance after the refusals: 0x%04x %v", st, err)
	}

	bad := writeFile(t, t.TempDir(), "bad.dcm", phantom.File(phantom.Spec{SOPInstanceUID: "2.25.63", StudyUID: "2.25/../../etc", DefinedLengths: true}))
	out, _ := exec.Command(storescu, "-v", "-aec", "LIFELINE", "127.0.0.1", b.port, bad).CombinedOutput()
	if !strings.Contains(string(out), "Received Store Response (Error: DataSetDoesNotMatchSOPClass)") {
		t.Errorf("storescu was not told 0xA900:\n%s", out)
	}
	if _, err := b.spool.Instance("2.25.63"); err == nil {
		t.Errorf("the spool indexed an instance with a ../ Study UID")
	}
}

// filesUnder lists the regular files under dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !spool.IsSlot(p) {
			files = append(files, p)
		}
		return nil
	})
	return files
}
