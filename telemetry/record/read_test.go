package record

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"lifeline/internal/peers"
	"lifeline/telemetry"
)

// TestReadECGReadsWhatExportWrites: every lead comes back under its label at the
// record's rate, within the µV the file stores.
func TestReadECGReadsWhatExportWrites(t *testing.T) {
	sent := ambulanceRun(telemetry.NewBus(nil), 3)
	file, series, err := ExportECG(sent, ECGOptions{PatientID: "AMB-7-0001", StudyInstanceUID: "1.2.826.0.1.3680043.10.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ReadECG(file)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Rate != series.Rate || len(doc.Labels) != 12 || doc.Labels[1] != "Lead II" || doc.StudyInstanceUID != "1.2.826.0.1.3680043.10.1" || doc.PatientID != "AMB-7-0001" {
		t.Fatalf("read back: rate %g labels %v study %q patient %q", doc.Rate, doc.Labels, doc.StudyInstanceUID, doc.PatientID)
	}
	for c := range series.Samples {
		for i, want := range series.Samples[c] {
			if d := math.Abs(float64(doc.Samples[c][i] - want)); d > 0.0006 {
				t.Fatalf("lead %s sample %d: %v mV, exported %v", doc.Labels[c], i, doc.Samples[c][i], want)
			}
		}
	}
}

// TestReadECGHonoursSensitivity: DCMTK's dcmodify changes the first channel's
// sensitivity from 1 uV to 5 uV per unit, as another electrocardiograph might store
// it; the reader scales that channel, and only that one, by five.
func TestReadECGHonoursSensitivity(t *testing.T) {
	dcmodify := peers.Need(t, "dcmodify")[0]
	sent := ambulanceRun(telemetry.NewBus(nil), 2)
	file, _, err := ExportECG(sent, ECGOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	before, err := ReadECG(file)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ecg.dcm")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(dcmodify, "-nb", "-m", "(5400,0100)[0].(003a,0200)[0].(003a,0210)=5", path).CombinedOutput(); err != nil {
		t.Fatalf("dcmodify: %v\n%s", err, out)
	}
	changed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	after, err := ReadECG(changed)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(before.Samples[0]); i += 13 {
		if got, want := after.Samples[0][i], 5*before.Samples[0][i]; math.Abs(float64(got-want)) > 1e-4 {
			t.Fatalf("lead I sample %d: %v mV, want %v", i, got, want)
		}
		if after.Samples[1][i] != before.Samples[1][i] {
			t.Fatalf("lead II changed too at sample %d", i)
		}
	}
}

// FuzzReadECG: whatever the bytes, ReadECG returns a document or an error; a document
// has as many samples per lead as it says and no lead without a label slot.
func FuzzReadECG(f *testing.F) {
	sent := ambulanceRun(telemetry.NewBus(nil), 1)
	file, _, err := ExportECG(sent, ECGOptions{}, time.Date(2026, 12, 2, 4, 30, 0, 0, time.UTC))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(file)
	f.Add(file[:len(file)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ReadECG(data)
		if err != nil {
			return
		}
		if len(doc.Labels) != len(doc.Samples) || len(doc.Samples) == 0 {
			t.Fatalf("%d labels for %d leads", len(doc.Labels), len(doc.Samples))
		}
	})
}
