package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestTwoHubsOnePACSCluster: two hubs on one PostgreSQL deliver to a PACS cluster,
// two Orthanc processes on one database of their own, each hub to its own Orthanc.
// Two boxes, one homed at each hub, receive the same 12-instance study from the
// modality at the same moment and both forward it. Each hub takes the whole study
// from its box, the shared state archives each instance once, and each instance is
// delivered once: Orthanc holds the 12, with the data sets the modality sent, seen
// alike through both of its processes, and the hubs made one delivery attempt for
// each.
func TestTwoHubsOnePACSCluster(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	pg := peers.PostgresCluster(t)
	orthanc := peers.OrthancCluster(t, pg.DSN, "orthanc", 2)
	dir := t.TempDir()
	hubs := []*sharedHub{
		newSharedHub(t, dir, "hub-a", pg.DSN, fmt.Sprintf("[pacs]\nstow_url = %q\n", orthanc[0].STOWURL)),
		newSharedHub(t, dir, "hub-b", pg.DSN, fmt.Sprintf("[pacs]\nstow_url = %q\n", orthanc[1].STOWURL)),
	}
	codes := []string{hubs[0].enrol(t, "AMB-0001")}
	startSharedHubs(t, hubs...)
	codes = append(codes, hubs[1].enrol(t, "AMB-0002"))

	if err := os.Mkdir(filepath.Join(dir, "study"), 0o700); err != nil {
		t.Fatal(err)
	}
	study, err := pacstest.WriteStudy(filepath.Join(dir, "study"), pacstest.StudySpec{
		StudyUID: "2.25.1818", PatientID: "PAT-MULTIHUB", Modality: "CT", Instances: 12, Rows: 128, Columns: 128, Seed: 18,
	})
	if err != nil {
		t.Fatal(err)
	}
	var dicomAddrs []string
	for i, h := range hubs {
		http, dicom := freePort(t), freePort(t)
		data := filepath.Join(dir, fmt.Sprintf("box%d", i+1))
		conf := writeFile(t, dir, fmt.Sprintf("edge%d.toml", i+1), fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = %q\n[dicom]\nlisten = %q\nstudy_quiet_period = \"1s\"\n",
			http, h.url(), dicom))
		if code, _, stderr := lifeline(t, "edge", "enroll", "--config", conf, "--data", data, "--code", codes[i]); code != 0 {
			t.Fatalf("enrol box %d at hub %s: %d %s", i+1, h.name, code, stderr)
		}
		start(t, "edge", "--config", conf, "--data", data)
		wait.For(t, 20*time.Second, fmt.Sprintf("box %d's receiver and forwarder ready", i+1), func() bool {
			var es statusBody
			getJSON(t, "http://"+http+"/api/v1/status", &es)
			r, _ := es.service("dicom-receiver")
			f, _ := es.service("forwarder")
			return r == "ready" && f == "ready"
		})
		dicomAddrs = append(dicomAddrs, dicom)
	}

	// The modality sends the study to both boxes at once.
	var wg sync.WaitGroup
	for _, addr := range dicomAddrs {
		host, port, _ := strings.Cut(addr, ":")
		wg.Go(func() {
			if out, err := exec.Command(storescu, "-aec", "LIFELINE", "-aet", "CT01", "+sd", host, port, filepath.Join(dir, "study")).CombinedOutput(); err != nil {
				t.Errorf("storescu to %s: %v\n%s", addr, err, out)
			}
		})
	}
	wg.Wait()

	want := map[string]string{}
	for _, in := range study {
		want[in.SOPInstanceUID] = in.DatasetMD5
	}
	wait.For(t, 90*time.Second, "both boxes' uploads complete and every instance delivered", func() bool {
		up, delivered, _ := hubDeliveries(t, pg.DSN)
		return up == 2*len(want) && delivered == len(want)
	})
	if _, delivered, attempts := hubDeliveries(t, pg.DSN); attempts != delivered {
		t.Errorf("%d delivery attempts for %d instances, want one each", attempts, delivered)
	}
	for i, node := range orthanc {
		got := orthancDatasets(t, node)
		if len(got) != len(want) {
			t.Fatalf("Orthanc process %d holds %d instances, want %d", i, len(got), len(want))
		}
		for sop, md5 := range want {
			if got[sop] != md5 {
				t.Errorf("Orthanc process %d: instance %s has data set MD5 %q, the modality sent %s", i, sop, got[sop], md5)
			}
		}
	}
}

// hubDeliveries reads the hubs' shared state: complete uploads, instances delivered
// to the PACS, and the delivery attempts made for those.
func hubDeliveries(t *testing.T, dsn string) (uploads, delivered, attempts int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("read the hubs' state: %v", err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM uploads WHERE complete),
		count(*), coalesce(sum(attempts), 0) FROM instances WHERE delivered_at IS NOT NULL`).Scan(&uploads, &delivered, &attempts); err != nil {
		t.Fatalf("read the hubs' state: %v", err)
	}
	return uploads, delivered, attempts
}

// orthancDatasets maps each instance an Orthanc process holds to the MD5 of its data
// set.
func orthancDatasets(t *testing.T, node peers.OrthancNode) map[string]string {
	t.Helper()
	get := func(path string) []byte {
		resp, err := http.Get(node.HTTPURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Orthanc GET %s: %s %s", path, resp.Status, body)
		}
		return body
	}
	var list []struct {
		ID            string            `json:"ID"`
		MainDicomTags map[string]string `json:"MainDicomTags"`
	}
	if err := json.Unmarshal(get("/instances?expand"), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, it := range list {
		md5, err := pacstest.DatasetMD5(get("/instances/" + it.ID + "/file"))
		if err != nil {
			t.Fatalf("Orthanc instance %s: %v", it.ID, err)
		}
		out[it.MainDicomTags["SOPInstanceUID"]] = md5
	}
	return out
}
