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
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestUploadsSurviveTheirHubKilled is issue 18's test of an upload in progress on a
// hub that dies. Two hub processes share a throwaway PostgreSQL 15 and a shared
// directory ([state] shared_dir), each delivering to its own process of an Orthanc
// cluster on one database. A box homed at hub A, with hub B as its fallback, receives
// a 200-instance CT study (instances of about 700 KiB, two chunks each) from the
// modality and forwards it. Hub A is frozen mid-study with uploads half done, what it
// recorded is read, and it is SIGKILLed. The box moves to hub B, which resumes every
// upload where hub A's offset stood and delivers what hub A had archived but not
// delivered once A's claims ran out. Every instance reaches Orthanc once, with the
// modality's data set; no upload was dropped and begun again, hub B took exactly the
// bytes hub A had not recorded, and the box counted no restart from byte 0.
func TestUploadsSurviveTheirHubKilled(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	pg := peers.PostgresCluster(t)
	orthanc := peers.OrthancCluster(t, pg.DSN, "orthanc", 2)
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	hubConf := func(stow string) string {
		return fmt.Sprintf("shared_dir = %q\n[pacs]\nstow_url = %q\n[ingest]\ndelivery_lease = \"10s\"\n", shared, stow)
	}
	a := newSharedHub(t, dir, "hub-a", pg.DSN, hubConf(orthanc[0].STOWURL))
	b := newSharedHub(t, dir, "hub-b", pg.DSN, hubConf(orthanc[1].STOWURL))
	code := a.enrol(t, "AMB-FAILOVER")
	startSharedHubs(t, a, b)

	studyDir := filepath.Join(dir, "study")
	if err := os.Mkdir(studyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	study, err := pacstest.WriteStudy(studyDir, pacstest.StudySpec{
		StudyUID: "2.25.181818", PatientID: "PAT-FAILOVER", Modality: "CT", Instances: 200, Rows: 600, Columns: 600, Seed: 1818,
	})
	if err != nil {
		t.Fatal(err)
	}
	// No live stream: the forwarder would yield the link to it, and this test is
	// about the uploads.
	edgeHTTP, dicomAddr := freePort(t), freePort(t)
	conf := writeFile(t, dir, "edge.toml", fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = %q\nfallback_urls = [%q]\n[dicom]\nlisten = %q\nstudy_quiet_period = \"1s\"\n[stream]\nenabled = false\n",
		edgeHTTP, a.url(), b.url(), dicomAddr))
	data := filepath.Join(dir, "box")
	if code, _, stderr := lifeline(t, "edge", "enroll", "--config", conf, "--data", data, "--code", code); code != 0 {
		t.Fatalf("enrol the box at hub A: %d %s", code, stderr)
	}
	start(t, "edge", "--config", conf, "--data", data)
	wait.For(t, 30*time.Second, "the box's receiver and forwarder ready", func() bool {
		var es statusBody
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
		r, _ := es.service("dicom-receiver")
		f, _ := es.service("forwarder")
		return r == "ready" && f == "ready"
	})

	host, port, _ := strings.Cut(dicomAddr, ":")
	sent := make(chan error, 1)
	go func() {
		out, err := exec.Command(storescu, "-aec", "LIFELINE", "-aet", "CT01", "+sd", host, port, studyDir).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("storescu: %v\n%s", err, out)
		}
		sent <- err
	}()

	db := connect(t, pg.DSN)
	began := time.Now()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var st json.RawMessage
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &st)
		up, delivered, attempts := hubDeliveries(t, pg.DSN)
		t.Logf("at the failure: %d uploads complete, %d instances delivered in %d attempts\nbox status: %s\nhub B's log tail:\n%s",
			up, delivered, attempts, st, tailOf(b.proc.stderr.String(), 6000))
	})
	// Hub A dies mid-study: some instances archived, some uploads half done.
	var atDeath map[string]uploadRow
	wait.For(t, 3*time.Minute, "hub A to hold 40 instances and uploads half done", func() bool {
		rows := uploadRows(t, db)
		done, half := 0, 0
		for _, u := range rows {
			switch {
			case u.complete:
				done++
			case u.offset > 0:
				half++
			}
		}
		if done < 40 || half == 0 {
			return false
		}
		// Frozen first, so that what it recorded can be read before it is gone:
		// after a moment for a commit it had sent to land.
		if err := a.proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		atDeath = uploadRows(t, db)
		for _, u := range atDeath {
			if !u.complete && u.offset > 0 {
				return true
			}
		}
		// The half-done uploads finished before it froze: let it go on a little.
		if err := a.proc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		return false
	})
	if err := a.proc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.proc.cmd.Wait()
	var recordedByA int64
	var halfDone []string
	for id, u := range atDeath {
		recordedByA += u.offset
		if !u.complete && u.offset > 0 {
			halfDone = append(halfDone, id)
		}
	}
	t.Logf("hub A SIGKILLed %v after the modality began, holding %d uploads (%d of them half done, %d bytes recorded)",
		time.Since(began).Round(time.Millisecond), len(atDeath), len(halfDone), recordedByA)
	killed := time.Now()

	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, in := range study {
		want[in.SOPInstanceUID] = in.DatasetMD5
	}
	wait.For(t, 5*time.Minute, "every instance delivered to the PACS", func() bool {
		_, delivered, _ := hubDeliveries(t, pg.DSN)
		return delivered == len(want)
	})

	t.Logf("every instance delivered %v after hub A was killed", time.Since(killed).Round(time.Millisecond))
	after := uploadRows(t, db)
	var total int64
	for _, u := range after {
		total += u.length
	}
	for _, id := range halfDone {
		u, ok := after[id]
		if !ok || !u.complete || !u.created.Equal(atDeath[id].created) {
			t.Errorf("upload %s, half done at hub A's death (%+v), is now %+v: want it finished, never dropped and begun again", id, atDeath[id], u)
		}
	}
	if took := ingestBytes(t, b); took != total-recordedByA {
		t.Errorf("hub B appended %d bytes; the study has %d and hub A had recorded %d, so want %d", took, total, recordedByA, total-recordedByA)
	}
	fs := boxForwarder(t, edgeHTTP)
	if fs.RestartsFromZero != 0 {
		t.Errorf("the box restarted %d uploads from byte 0", fs.RestartsFromZero)
	}
	t.Logf("box: %d wire bytes, %d re-sent, %d restarts from zero; hub B appended %d of %d bytes", fs.WireBytes, fs.ResentBytes, fs.RestartsFromZero, total-recordedByA, total)

	if _, delivered, attempts := hubDeliveries(t, pg.DSN); attempts != delivered {
		t.Errorf("%d delivery attempts recorded for %d instances, want one each", attempts, delivered)
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

// uploadRow is one upload as the hubs' shared state holds it.
type uploadRow struct {
	offset, length int64
	complete       bool
	created        time.Time
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("read the hubs' state: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// uploadRows reads every upload of the shared state by ID.
func uploadRows(t *testing.T, db *pgx.Conn) map[string]uploadRow {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT id, "offset", length, complete, created_at FROM uploads`)
	if err != nil {
		t.Fatalf("read the uploads: %v", err)
	}
	out := map[string]uploadRow{}
	var id string
	var u uploadRow
	if _, err := pgx.ForEachRow(rows, []any{&id, &u.offset, &u.length, &u.complete, &u.created}, func() error {
		out[id] = u
		return nil
	}); err != nil {
		t.Fatalf("read the uploads: %v", err)
	}
	return out
}

// ingestBytes reads the instance bytes a hub appended to uploads from its /metrics.
func ingestBytes(t *testing.T, h *sharedHub) int64 {
	t.Helper()
	resp, err := http.Get("http://" + h.status + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	if _, err := io.Copy(&body, resp.Body); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "lifeline_ingest_bytes_total "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return int64(f)
		}
	}
	t.Fatalf("hub %s's /metrics has no lifeline_ingest_bytes_total", h.name)
	return 0
}

// forwarderCounters is the part of the box's forwarder status this test reads.
type forwarderCounters struct {
	WireBytes        int64 `json:"wire_bytes"`
	ResentBytes      int64 `json:"resent_bytes"`
	RestartsFromZero int64 `json:"restarts_from_zero"`
}

// boxForwarder reads the box's forwarder counters from its /api/v1/status.
func boxForwarder(t *testing.T, edgeHTTP string) forwarderCounters {
	t.Helper()
	var st struct {
		Services []struct {
			Name    string          `json:"name"`
			Details json.RawMessage `json:"details"`
		} `json:"services"`
	}
	getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &st)
	var fc forwarderCounters
	for _, s := range st.Services {
		if s.Name == "forwarder" {
			if err := json.Unmarshal(s.Details, &fc); err != nil {
				t.Fatalf("the box's forwarder status: %v", err)
			}
			return fc
		}
	}
	t.Fatal("the box's status has no forwarder")
	return fc
}

// tailOf is the last n bytes of s.
func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
