package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"lifeline/appliance"
	"lifeline/dispatch/jt808"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// The receiving hospital at the end of the simulator's drive across Guangzhou.
const testHospitalLat, testHospitalLon = 23.1270, 113.2760

// TestAmbulanceOnTheBoard runs the hub, the box and the three simulators as the
// operator would: GNSS (driving a route at 60 km/h) and the 5G module on socat cables,
// the JT/T 808 platform over TCP. The platform's log receives the box's reports every
// 5 s while the ambulance is available; the hub's /api/v1/boxes shows it moving in
// Guangzhou with its fix, ETA to the hospital and link quality; the crew sets the
// mission through the box's API (JSON, same origin only) and the reports come every
// second, the hub shows the new state; in Chromium the status page shows position, ETA
// and link, its "en route" button reaches the hub's board, and a text from dispatch
// appears on it.
func TestAmbulanceOnTheBoard(t *testing.T) {
	gnssCable, modemCable := peers.PlugCable(t), peers.PlugCable(t)
	platformAddr := freePort(t)
	extra := fmt.Sprintf(`
[gnss]
port = %q
baud = 9600
[modem]
port = %q
poll = "500ms"
[dispatch]
server = %q
terminal_id = "13800138000"
edition = "2019"
interval = "5s"
[dispatch.destination]
name = "Provincial People's Hospital"
lat = %g
lon = %g
`, gnssCable.BoxEnd, modemCable.BoxEnd, platformAddr, testHospitalLat, testHospitalLon)
	sys := newTestSystem(t, "AMB-7", "", extra)
	logPath := filepath.Join(sys.dir, "reports.jsonl")
	platform := exec.Command(binary, "sim", "dispatch", "--listen", platformAddr, "--log", logPath)
	toPlatform, err := platform.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := platform.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { toPlatform.Close(); stopSimProcess(platform) })
	start(t, "sim", "gnss", "--port", gnssCable.DeviceEnd, "--baud", "9600", "--speed", "60")
	start(t, "sim", "modem", "--port", modemCable.DeviceEnd)
	sys.startHub(t)
	wait.For(t, 10*time.Second, "hub serving", func() bool { return getJSON(t, "http://"+sys.hubStatus+"/healthz", nil) == 200 })
	sys.enrolBox(t)
	sys.startBox(t)

	wait.For(t, 60*time.Second, "two live reports in Guangzhou with the modem's signal in the platform's log", func() bool {
		return len(liveReportsInGuangzhou(logPath)) >= 2
	})
	first := waitForBoard(t, sys, "the ambulance on the hub's board with fix, ETA and link", func(b appliance.BoxSummary) bool {
		return b.Fix == appliance.FixFixed && b.ETA != nil && b.Link != nil && b.Link.Technology != "" && b.Link.RSRP != nil
	})
	t.Logf("on the board: fix %s at %+v, %.0f km/h, ETA %+v, link %+v", first.Fix, *first.Position, first.SpeedKmh, *first.ETA, *first.Link)
	checkBoardEntry(t, first)
	waitForBoard(t, sys, "the ambulance to move on the board", func(b appliance.BoxSummary) bool {
		return b.Position != nil && (b.Position.Lat != first.Position.Lat || b.Position.Lon != first.Position.Lon)
	})
	waitForBoard(t, sys, "the box's live stream (its vitals) on the board", func(b appliance.BoxSummary) bool { return b.Live })
	wait.For(t, 30*time.Second, "two live reports 5 s apart while the ambulance is available", func() bool {
		return countGaps(liveReportsInGuangzhou(logPath), time.Time{}, 4500*time.Millisecond, 6*time.Second) >= 1
	})

	boxURL := "http://" + sys.edgeHTTP + appliance.MissionPath
	if code := postMission(t, boxURL, "text/plain", "", `{"state":"dispatched"}`); code != http.StatusUnsupportedMediaType {
		t.Fatalf("a mission change that is not JSON: status %d, want 415", code)
	}
	if code := postMission(t, boxURL, "application/json", "cross-site", `{"state":"dispatched"}`); code != http.StatusForbidden {
		t.Fatalf("a cross-site mission change: status %d, want 403", code)
	}
	if code := postMission(t, boxURL, "application/json", "", `{"state":"on scene"}`); code != http.StatusConflict {
		t.Fatalf("available → on scene: status %d, want 409", code)
	}
	changed := time.Now().UTC()
	if code := postMission(t, boxURL, "application/json", "same-origin", `{"state":"dispatched"}`); code != http.StatusOK {
		t.Fatalf("the crew's mission change: status %d, want 200", code)
	}
	wait.For(t, 30*time.Second, "three reports a second apart once dispatched", func() bool {
		return countGaps(liveReportsInGuangzhou(logPath), changed, 500*time.Millisecond, 1500*time.Millisecond) >= 3
	})
	waitForBoard(t, sys, "the mission state on the hub's board", func(b appliance.BoxSummary) bool {
		return b.Mission.State == "dispatched"
	})

	var pos appliance.BoxReport
	if code := getJSON(t, "http://"+sys.edgeHTTP+appliance.PositionPath, &pos); code != http.StatusOK ||
		pos.Fix != appliance.FixFixed || pos.Position == nil || pos.Mission.State != "dispatched" {
		t.Fatalf("box's position API: status %d, %+v", code, pos)
	}

	// The crew presses "en route" on the status page, and reads dispatch's text there,
	// in English: the language the page keeps in the browser is set before it loads.
	tab := peers.Browser(t, peers.BrowserOptions{Timeout: time.Minute})
	if err := chromedp.Do(tab, chromedp.Navigate("http://"+sys.edgeHTTP+"/healthz")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`localStorage.setItem("lifeline.box.lang", "en"), true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab,
		chromedp.Navigate("http://"+sys.edgeHTTP+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#position`)),
		chromedp.WaitVisible(chromedp.CSS(`#mission-buttons button.current`)),
	); err != nil {
		t.Fatalf("the status page's mission: %v", err)
	}
	wait.For(t, 10*time.Second, "the page to show the fix, the ETA and the link", func() bool {
		shown, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("position").innerText`))
		return err == nil && strings.Contains(shown, "fixed") && strings.Contains(shown, "WGS-84") &&
			strings.Contains(shown, "ETA") && strings.Contains(shown, "dBm RSRP") && strings.Contains(shown, "dispatched")
	})
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](
		`(() => { document.querySelector('#mission-buttons button[data-state="en route"]').click(); return true; })()`)); err != nil {
		t.Fatalf("press en route: %v", err)
	}
	waitForBoard(t, sys, "en route, set on the status page, on the hub's board", func(b appliance.BoxSummary) bool {
		return b.Mission.State == "en route"
	})
	if _, err := toPlatform.Write([]byte("text 00000000013800138000 急诊已准备好\n")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 15*time.Second, "dispatch's text on the crew's page", func() bool {
		var msgs []appliance.CrewMessage
		getJSON(t, "http://"+sys.edgeHTTP+appliance.MessagesPath, &msgs)
		shown, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("messages").innerText`))
		return len(msgs) == 1 && msgs[0].Text == "急诊已准备好" && err == nil && strings.Contains(shown, "急诊已准备好")
	})
}

// TestBadPositionConfigExitsTwo: a bad [gnss], [modem] or [dispatch] value stops the
// box at once with status 2 and one line naming the file and the key.
func TestBadPositionConfigExitsTwo(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ body, key, says string }{
		{"[gnss]\nport = \"/dev/ttyACM0\"\nusb = \"ublox\"\n", "gnss.usb", "VID:PID"},
		{"[dispatch]\nserver = \"127.0.0.1:7808\"\nterminal_id = \"13800138000\"\nedition = \"2011\"\n", "dispatch.edition", "not one of"},
		{"[dispatch.destination]\nname = \"ED\"\nlat = 123.0\nlon = 113.2\n", "dispatch.destination.lat", "latitude"},
	} {
		conf := writeFile(t, dir, "edge.toml", c.body)
		code, _, stderr := lifeline(t, "edge", "--config", conf, "--data", filepath.Join(dir, "data"))
		if code != 2 || !strings.Contains(stderr, conf) || !strings.Contains(stderr, `"`+c.key+`"`) ||
			!strings.Contains(stderr, c.says) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming %s and %q", c.key, code, stderr, conf, c.key)
		}
	}
}

// checkBoardEntry checks what the board shows of the moving ambulance.
func checkBoardEntry(t *testing.T, b appliance.BoxSummary) {
	t.Helper()
	p := b.Position
	if p == nil || p.Datum != "WGS-84" || p.Lat < 23.12 || p.Lat > 23.14 || p.Lon < 113.27 || p.Lon > 113.33 {
		t.Fatalf("position %+v is not in Guangzhou in WGS-84", p)
	}
	if b.SpeedKmh < 50 || b.SpeedKmh > 70 || b.HeadingDeg == nil {
		t.Errorf("speed %.1f km/h heading %v, want about 60 km/h with a heading", b.SpeedKmh, b.HeadingDeg)
	}
	if b.Destination == nil || b.Destination.Name != "Provincial People's Hospital" || b.Mission.State != "available" {
		t.Errorf("mission %+v destination %+v", b.Mission, b.Destination)
	}
	if b.ETA.RemainingS <= 0 || b.ETA.DistanceM < 100 || b.ETA.DistanceM > 6000 || b.ETA.Arrival.Before(b.LastContact) {
		t.Errorf("ETA %+v", b.ETA)
	}
	if l := b.Link; l.Bars < 1 || l.Bars > 5 || *l.RSRP > -40 || *l.RSRP < -140 || !l.Registered {
		t.Errorf("link %+v", l)
	}
	if since := time.Since(b.LastContact); since < 0 || since > 10*time.Second {
		t.Errorf("last contact %s ago", since)
	}
}

// waitForBoard waits until the hub's board (on its status listener) shows AMB-7 as ok
// wants, and returns that entry.
func waitForBoard(t *testing.T, sys *testSystem, what string, ok func(appliance.BoxSummary) bool) appliance.BoxSummary {
	t.Helper()
	var got appliance.BoxSummary
	wait.For(t, 30*time.Second, what, func() bool {
		var boxes []appliance.BoxSummary
		getJSON(t, "http://"+sys.hubStatus+"/api/v1/boxes", &boxes)
		for _, b := range boxes {
			if b.Device == "AMB-7" && ok(b) {
				got = b
				return true
			}
		}
		return false
	})
	return got
}

// liveReportsInGuangzhou are the platform's live 0x0200 reports of the ambulance, by
// GNSS time.
func liveReportsInGuangzhou(path string) []jt808.Report {
	var out []jt808.Report
	for _, r := range readReports(path) {
		if r.Message == "0x0200" && r.Lat > 23.12 && r.Lat < 23.14 && r.Lon > 113.27 && r.Lon < 113.33 && r.Signal != nil && *r.Signal > 0 {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// countGaps counts consecutive reports made after from whose GNSS times are between
// min and max apart.
func countGaps(reports []jt808.Report, from time.Time, min, max time.Duration) int {
	n := 0
	for i := 1; i < len(reports); i++ {
		if reports[i-1].Time.Before(from) {
			continue
		}
		if gap := reports[i].Time.Sub(reports[i-1].Time); gap >= min && gap <= max {
			n++
		}
	}
	return n
}

// postMission posts a mission change to the box as a browser would, with its
// Sec-Fetch-Site header (none when empty), and returns the status.
func postMission(t *testing.T, url, contentType, fetchSite, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if fetchSite != "" {
		req.Header.Set("Sec-Fetch-Site", fetchSite)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
