package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// boxDICOMStatus is the part of the box's /api/v1/status this test reads: the spool's
// ready queue and the forwarder's studies and dead letters.
type boxDICOMStatus struct {
	Services []struct {
		Name    string `json:"name"`
		Details struct {
			ReadyQueued int `json:"ready_queued"`
			Studies     []struct {
				StudyUID      string `json:"study_uid"`
				State         string `json:"state"`
				InstancesDone int    `json:"instances_done"`
				InstancesDead int    `json:"instances_dead"`
			} `json:"studies"`
			DeadLetters []struct {
				SOPInstanceUID string `json:"sop_instance_uid"`
			} `json:"dead_letters"`
		} `json:"details"`
	} `json:"services"`
}

func readBoxDICOMStatus(t *testing.T, edgeHTTP string) (spoolReady int, forwarder boxForwarderView) {
	t.Helper()
	var st boxDICOMStatus
	getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &st)
	for _, s := range st.Services {
		switch s.Name {
		case "dicom-spool":
			spoolReady = s.Details.ReadyQueued
		case "forwarder":
			forwarder.studies = len(s.Details.Studies)
			forwarder.dead = len(s.Details.DeadLetters)
			for _, x := range s.Details.Studies {
				if x.State == "blocked" {
					forwarder.blocked = append(forwarder.blocked, fmt.Sprintf("%s %d done %d dead", x.StudyUID, x.InstancesDone, x.InstancesDead))
				}
			}
		}
	}
	return spoolReady, forwarder
}

type boxForwarderView struct {
	studies, dead int
	blocked       []string
}

// TestDeadLetterRetriedThroughTheAPIAndTheBinary dead-letters instances the way a
// running box really does: their spool files are gone when the forwarder comes to
// send them (the spool's storage was unmounted under it). The box lists them through
// its API, `lifeline edge dead-letters` and its status page, and blocks their study;
// once the files are back, one is retried with the status page's button in Chromium,
// one through the HTTP API and the last with `lifeline edge retry --all`, and the
// study reaches the hub whole.
func TestDeadLetterRetriedThroughTheAPIAndTheBinary(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	dir := t.TempDir()
	studyDir := filepath.Join(dir, "study")
	if err := os.Mkdir(studyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	const studyUID = "2.25.4712"
	study, err := pacstest.WriteStudy(studyDir, pacstest.StudySpec{StudyUID: studyUID, Instances: 5, Seed: 12})
	if err != nil {
		t.Fatal(err)
	}

	sys := newTestSystem(t, "AMB-DL-1", "", "study_quiet_period = \"1s\"\n")
	sys.startHub(t)
	box := sys.startBox(t)
	edgeHTTP, edgeConf, edgeData := sys.edgeHTTP, sys.edgeConf, sys.edgeData

	// The box receives the study before it is enrolled, so the study waits in the spool.
	wait.For(t, 10*time.Second, "box serving", func() bool { return getJSON(t, "http://"+edgeHTTP+"/healthz", nil) == 200 })
	host, port, _ := strings.Cut(sys.dicomAddr, ":")
	if out, err := exec.Command(storescu, "-aec", "LIFELINE", "-aet", "CT01", "+sd", host, port, studyDir).CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	wait.For(t, 20*time.Second, "the study complete in the spool", func() bool {
		ready, _ := readBoxDICOMStatus(t, edgeHTTP)
		return ready == 1
	})
	missing := study[:3]
	for _, in := range missing {
		spooled := filepath.Join(edgeData, "spool", studyUID, in.SOPInstanceUID+".dcm")
		if err := os.Rename(spooled, filepath.Join(dir, in.SOPInstanceUID)); err != nil {
			t.Fatalf("take the spool file away: %v", err)
		}
	}
	sys.enrolBox(t)

	wait.For(t, 30*time.Second, "three dead letters and the study blocked", func() bool {
		_, fw := readBoxDICOMStatus(t, edgeHTTP)
		return fw.dead == 3 && len(fw.blocked) == 1
	})
	if _, fw := readBoxDICOMStatus(t, edgeHTTP); fw.blocked[0] != studyUID+" 2 done 3 dead" {
		t.Fatalf("blocked study: %q, want the two present instances done and three dead", fw.blocked[0])
	}
	code, out, stderr := lifeline(t, "edge", "dead-letters", "--config", edgeConf)
	if code != 0 {
		t.Fatalf("edge dead-letters: status %d: %s", code, stderr)
	}
	for _, in := range missing {
		if !strings.Contains(out, in.SOPInstanceUID) || !strings.Contains(out, "is missing") {
			t.Fatalf("edge dead-letters does not list %s as missing:\n%s", in.SOPInstanceUID, out)
		}
	}
	if code, _, stderr := lifeline(t, "edge", "retry", "--config", edgeConf, "2.25.999"); code != exitFailure || !strings.Contains(stderr, "not on the dead-letter list") {
		t.Fatalf("retry of an instance not dead-lettered: status %d, %q", code, stderr)
	}

	// A page whose own name was resolved to the box's loopback (DNS rebinding) is refused.
	rebound, _ := http.NewRequest(http.MethodPost, "http://"+edgeHTTP+"/api/v1/dead-letters/"+missing[0].SOPInstanceUID+"/retry", strings.NewReader("{}"))
	rebound.Host = "rebound.example:80"
	rebound.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(rebound); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("retry with a foreign Host: %v %v, want 421", resp, err)
	} else {
		resp.Body.Close()
	}

	// The storage is back.
	for _, in := range missing {
		if err := os.Rename(filepath.Join(dir, in.SOPInstanceUID), filepath.Join(edgeData, "spool", studyUID, in.SOPInstanceUID+".dcm")); err != nil {
			t.Fatal(err)
		}
	}
	retryOnStatusPage(t, "http://"+edgeHTTP+"/", missing[0].SOPInstanceUID)
	wait.For(t, 30*time.Second, "the instance retried on the status page sent", func() bool {
		_, fw := readBoxDICOMStatus(t, edgeHTTP)
		return fw.dead == 2
	})
	req, _ := http.NewRequest(http.MethodPost, "http://"+edgeHTTP+"/api/v1/dead-letters/"+missing[1].SOPInstanceUID+"/retry", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST retry: %s", resp.Status)
	}
	wait.For(t, 30*time.Second, "the instance retried through the API sent", func() bool {
		_, fw := readBoxDICOMStatus(t, edgeHTTP)
		return fw.dead == 1 && len(fw.blocked) == 1
	})
	code, out, stderr = lifeline(t, "edge", "retry", "--config", edgeConf, "--all")
	if code != 0 || !strings.Contains(out, "retried "+missing[2].SOPInstanceUID) {
		t.Fatalf("edge retry --all: status %d\n%s%s", code, out, stderr)
	}
	wait.For(t, 30*time.Second, "the study acknowledged by the hub", func() bool {
		ready, fw := readBoxDICOMStatus(t, edgeHTTP)
		return ready == 0 && fw.studies == 0 && fw.dead == 0
	})
	wait.For(t, 20*time.Second, "the hub reports the study delivered to its archive", func() bool {
		return sys.hubReports(t, studyUID, "delivered_at")
	})
	if code, out, _ := lifeline(t, "edge", "dead-letters", "--config", edgeConf); code != 0 || !strings.Contains(out, "no dead letters") {
		t.Fatalf("edge dead-letters after the retry: status %d\n%s", code, out)
	}
	box.stop(t)
	for _, in := range missing {
		if !strings.Contains(box.stderr.String(), in.SOPInstanceUID) || !strings.Contains(box.stderr.String(), "retried by an operator") {
			t.Fatalf("the box's log does not record the retry of %s:\n%s", in.SOPInstanceUID, box.stderr)
		}
	}
}

// retryOnStatusPage opens the box's status page in Chromium as the crew would, finds
// the dead letter's row and presses its Retry button, then waits until the page no
// longer lists it.
func retryOnStatusPage(t *testing.T, pageURL, sop string) {
	t.Helper()
	tab := peers.Browser(t, peers.BrowserOptions{Timeout: time.Minute})
	button := `#deadletters button[data-sop="` + sop + `"]`
	if err := chromedp.Do(tab,
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.CSS(button)),
		chromedp.Click(chromedp.CSS(button)),
	); err != nil {
		t.Fatalf("press Retry of %s on the status page: %v", sop, err)
	}
	wait.For(t, 20*time.Second, "the status page to drop the retried instance", func() bool {
		gone, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.querySelector('`+button+`') === null && document.querySelectorAll('#deadletters tr').length === 2`))
		return err == nil && gone
	})
}

// TestEdgeRetryUsage checks what an operator who mistypes gets: a usage error (2) for
// a retry of nothing or with a flag after the UIDs, and a failure (1) that says the box
// does not answer when none runs on the configured address.
func TestEdgeRetryUsage(t *testing.T) {
	conf := writeFile(t, t.TempDir(), "edge.toml", fmt.Sprintf("[http]\nlisten = %q\n", freePort(t)))
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"edge", "retry", "--config", conf}, exitUsage, "give either --all or the SOP Instance UIDs"},
		{[]string{"edge", "retry", "--config", conf, "--all", "1.2.3"}, exitUsage, "give either --all or the SOP Instance UIDs"},
		{[]string{"edge", "retry", "--config", conf, "1.2.3", "--all"}, exitUsage, "flags go before"},
		{[]string{"edge", "retry", "--config", conf, "1.2.3"}, exitFailure, "does not answer"},
		{[]string{"edge", "dead-letters", "--config", conf}, exitFailure, "does not answer"},
	} {
		code, _, stderr := lifeline(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.says) {
			t.Errorf("lifeline %s: status %d, %q; want %d saying %q", strings.Join(c.args, " "), code, stderr, c.code, c.says)
		}
	}
}
