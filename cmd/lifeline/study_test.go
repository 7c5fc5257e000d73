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

	hubAddr, hubStatus, edgeHTTP, dicomAddr := freePort(t), freePort(t), freePort(t), freePort(t)
	hubConf := writeFile(t, dir, "hub.toml", fmt.Sprintf("[server]\nlisten = %q\n[status]\nlisten = %q\n[pacs]\nstow_url = %q\n",
		hubAddr, hubStatus, orthanc.STOWURL))
	edgeConf := writeFile(t, dir, "edge.toml", fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = \"https://%s\"\n[dicom]\nlisten = %q\nstudy_quiet_period = \"1s\"\n",
		edgeHTTP, hubAddr, dicomAddr))
	hubData, edgeData := filepath.Join(dir, "hub"), filepath.Join(dir, "edge")

	code, out, stderr := lifeline(t, "hub", "enroll", "--data", hubData, "--config", hubConf, "--device", "CLINIC-01")
	if code != 0 {
		t.Fatalf("hub enroll: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	start(t, "hub", "--config", hubConf, "--data", hubData)
	var hs statusBody
	eventually(t, "hub ready", 10*time.Second, func() bool {
		return getJSON(t, "http://"+hubStatus+"/api/v1/status", &hs) == 200 && hs.Overall == "ready"
	})
	if code, _, stderr := lifeline(t, "edge", "enroll", "--config", edgeConf, "--data", edgeData, "--code", lines[len(lines)-1]); code != 0 {
		t.Fatalf("edge enroll: %s", stderr)
	}
	start(t, "edge", "--config", edgeConf, "--data", edgeData)
	var es statusBody
	eventually(t, "box receiver and forwarder ready", 10*time.Second, func() bool {
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
		r, _ := es.service("dicom-receiver")
		f, _ := es.service("forwarder")
		return r == "ready" && f == "ready"
	})

	host, port, _ := strings.Cut(dicomAddr, ":")
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
	eventually(t, "every instance in Orthanc", 60*time.Second, func() bool {
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
	eventually(t, "hub reports the study delivered", 20*time.Second, func() bool {
		var raw map[string]any
		getJSON(t, "http://"+hubStatus+"/api/v1/status", &raw)
		return strings.Contains(fmt.Sprint(raw), "2.25.4711") && strings.Contains(fmt.Sprint(raw), "delivered_at")
	})
}
