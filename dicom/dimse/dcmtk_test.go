package dimse_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/durable"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

func TestEchoSCU(t *testing.T) {
	echoscu := peers.Need(t, "echoscu")[0]
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	run(t, echoscu, "-aec", "LIFELINE", "127.0.0.1", b.port)
	// A wrong called AE title is rejected, and the box keeps serving.
	if out, err := exec.Command(echoscu, "-aec", "NOTUS", "127.0.0.1", b.port).CombinedOutput(); err == nil {
		t.Fatalf("echoscu to a wrong called AE succeeded:\n%s", out)
	}
	run(t, echoscu, "-aec", "LIFELINE", "127.0.0.1", b.port)
	if got := counter(t, b.reg, "lifeline_dicom_associations_total", "rejected"); got != 1 {
		t.Errorf("rejected associations = %v, want 1", got)
	}
}

// TestStoreSCUSingleFileMatchesStoreSCP sends one file with storescu to the box and to
// DCMTK's storescp and checks that both stored the same data set bytes, and that the
// spool's index describes the file.
func TestStoreSCUSingleFileMatchesStoreSCP(t *testing.T) {
	p := peers.Need(t, "storescu", "storescp", "dcmdump")
	storescu, storescp, dcmdump := p[0], p[1], p[2]
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	refPort, refDir := startStoreSCP(t, storescp)
	src := writeFile(t, t.TempDir(), "ct.dcm", phantom.File(phantom.Spec{SOPInstanceUID: "2.25.42", StudyUID: "2.25.4", PatientName: "Ngubane^Thandi"}))
	run(t, storescu, "-aec", "LIFELINE", "127.0.0.1", b.port, src)
	run(t, storescu, "-aec", "LIFELINE", "127.0.0.1", refPort, src)

	inst, err := b.spool.Instance("2.25.42")
	if err != nil {
		t.Fatal(err)
	}
	ours, meta := datasetOf(t, inst.Path)
	ref, _ := datasetOf(t, storescpFile(t, refDir, "2.25.42"))
	if !bytes.Equal(ours, ref) {
		t.Fatalf("spooled data set (%d bytes) differs from storescp's (%d bytes)", len(ours), len(ref))
	}
	if meta.TransferSyntaxUID != dicom.ExplicitVRLittleEndian || meta.ImplementationClassUID != dicom.ImplementationClassUID {
		t.Errorf("meta = %+v", meta)
	}
	if inst.StudyUID != "2.25.4" || inst.PatientName != "Ngubane^Thandi" || inst.Modality != "CT" || inst.CallingAE != "STORESCU" {
		t.Errorf("index entry = %+v", inst)
	}
	run(t, dcmdump, "-q", inst.Path) // DCMTK reads the spooled file
	if inst.SHA256 != sha256File(t, inst.Path) {
		t.Errorf("index SHA-256 does not match the file")
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	return fmt.Sprintf("%x", sha256Sum(t, path))
}

// TestStoreSCUFolderQueuesStudies sends a folder of two studies with +sd and checks
// that after the quiet period each study is queued once with all its instances.
func TestStoreSCUFolderQueuesStudies(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	b := startBox(t, dimse.SCPConfig{}, spool.Config{QuietPeriod: 300 * time.Millisecond})
	dir := t.TempDir()
	for i := 0; i < 6; i++ {
		study := "2.25.100"
		if i%2 == 1 {
			study = "2.25.200"
		}
		writeFile(t, dir, fmt.Sprintf("s%d/i%d.dcm", i%2, i), phantom.File(phantom.Spec{StudyUID: study, SOPInstanceUID: phantom.UID(study, i), Fill: byte(i)}))
	}
	writeFile(t, dir, "README.txt", []byte("not dicom"))
	run(t, storescu, "-aec", "LIFELINE", "+sd", "+r", "+sp", "*.dcm", "127.0.0.1", b.port, dir)
	if n := countInstances(t, b.spool); n != 6 {
		t.Fatalf("spool holds %d instances, want 6", n)
	}
	studies := waitQueued(t, b.spool, 2, 5*time.Second)
	for _, st := range studies {
		if len(st.Instances) != 3 {
			t.Errorf("study %s queued with %d instances, want 3", st.StudyUID, len(st.Instances))
		}
	}
	st := b.scp.Status()
	if st.Instances != 6 || len(st.RecentStudies) != 2 || st.ActiveAssociations != 0 || st.RecentStudies[0].Instances != 3 {
		t.Errorf("status = %+v", st)
	}
	for _, v := range []any{st, b.spool.Status()} {
		if data, err := json.Marshal(v); err != nil || !strings.Contains(string(data), `"recent_studies"`) {
			t.Errorf("status JSON %s: %v", data, err)
		}
	}
}

// TestFourParallelStoreSCU runs four storescu processes at once.
func TestFourParallelStoreSCU(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for p := 0; p < 4; p++ {
		dir := t.TempDir()
		for i := 0; i < 10; i++ {
			study := fmt.Sprintf("2.25.%d", 300+p)
			writeFile(t, dir, fmt.Sprintf("i%d.dcm", i), phantom.File(phantom.Spec{StudyUID: study, SOPInstanceUID: phantom.UID(study, i), Rows: 64, Columns: 64}))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := exec.Command(storescu, "-aec", "LIFELINE", "+sd", "127.0.0.1", b.port, dir).CombinedOutput(); err != nil {
				errs <- fmt.Errorf("storescu %d: %v\n%s", p, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := countInstances(t, b.spool); n != 40 {
		t.Fatalf("spool holds %d instances, want 40", n)
	}
	if got := counter(t, b.reg, "lifeline_dicom_associations_total", "accepted"); got != 4 {
		t.Errorf("accepted associations = %v, want 4", got)
	}
}

func waitQueued(t *testing.T, sp *spool.Spool, want int, timeout time.Duration) []spool.Study {
	t.Helper()
	var items []durable.Item
	wait.Until(timeout, func() bool { // on a timeout, the count below says what was queued
		var err error
		if items, err = sp.Queue().Peek(0); err != nil {
			t.Fatal(err)
		}
		return len(items) >= want
	})
	var out []spool.Study
	for _, it := range items {
		var st spool.Study
		if err := jsonUnmarshal(it.Value, &st); err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	if len(out) != want {
		t.Fatalf("%d studies queued, want %d", len(out), want)
	}
	return out
}
