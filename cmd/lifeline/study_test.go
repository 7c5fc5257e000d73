package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestStudyFromModalityReachesPACS follows a study along the whole product path with
// real peers at both ends: DCMTK's storescu (the modality) → `lifeline edge` (C-STORE
// SCP, spool, forwarder) → QUIC with mutual TLS → `lifeline hub` (ingest) → Orthanc by
// STOW-RS. Every instance must arrive in Orthanc with the data set the modality sent.
func TestStudyFromModalityReachesPACS(t *testing.T) {
	paths := peers.Need(t, "storescu", "Orthanc")
	storescu := paths[0]
	orthanc := pacstest.StartOrthanc(t)

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "study"), 0o700); err != nil {
		t.Fatal(err)
	}
	study, err := pacstest.WriteStudy(filepath.Join(dir, "study"), pacstest.StudySpec{
		StudyUID: "2.25.4711", PatientID: "PAT-E2E", Modality: "CT", Instances: 12, Rows: 128, Columns: 128, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}

	sys := newTestSystem(t, "CLINIC-01", fmt.Sprintf("[pacs]\nstow_url = %q\n", orthanc.STOWURL), "study_quiet_period = \"1s\"\n")
	sys.startHub(t)
	var hs statusBody
	wait.For(t, 10*time.Second, "hub ready", func() bool {
		return getJSON(t, "http://"+sys.hubStatus+"/api/v1/status", &hs) == 200 && hs.Overall == "ready"
	})
	sys.enrolBox(t)
	sys.startBox(t)
	wait.For(t, 10*time.Second, "box receiver and forwarder ready", func() bool {
		es := sys.boxStatus(t)
		r, _ := es.service("dicom-receiver")
		f, _ := es.service("forwarder")
		return r == "ready" && f == "ready"
	})

	host, port, _ := strings.Cut(sys.dicomAddr, ":")
	send := exec.Command(storescu, "-aec", "LIFELINE", "-aet", "CT01", "+sd", host, port, filepath.Join(dir, "study"))
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}

	want := map[string]string{}
	for _, in := range study {
		want[in.SOPInstanceUID] = in.DatasetMD5
	}
	ctx := context.Background()
	var stored []pacstest.StoredInstance
	wait.For(t, 60*time.Second, "every instance in Orthanc", func() bool {
		stored, err = orthanc.Instances(ctx)
		return err == nil && len(stored) >= len(want)
	})
	if len(stored) != len(want) {
		t.Fatalf("Orthanc holds %d instances, want %d", len(stored), len(want))
	}
	for _, s := range stored {
		if want[s.SOPInstanceUID] == "" {
			t.Errorf("unexpected instance %s in Orthanc", s.SOPInstanceUID)
		} else if s.DatasetMD5 != want[s.SOPInstanceUID] {
			t.Errorf("instance %s: data set MD5 %s in Orthanc, %s sent by the modality", s.SOPInstanceUID, s.DatasetMD5, want[s.SOPInstanceUID])
		}
	}
	// The hub reports the study delivered.
	wait.For(t, 20*time.Second, "hub reports the study delivered", func() bool {
		return sys.hubReports(t, "2.25.4711", "delivered_at")
	})
}
