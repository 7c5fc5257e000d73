package edscreen

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// viewport sets the tab's size as a wall screen's or a tablet's.
func viewport(t *testing.T, tab context.Context, w, h int64) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatalf("viewport %dx%d: %v", w, h, err)
	}
}

// screenshot saves the tab as dir/name when LIFELINE_SCREENSHOTS names a directory
// (make screenshots: LIFELINE_SCREENSHOTS=$PWD/docs).
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	dir := os.Getenv("LIFELINE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", filepath.Join(dir, name))
}

// stemiCard is the crew's card of the test patient: a STEMI pre-alert.
var stemiCard = &PatientCard{AgeBand: "60-69", Sex: "male", Complaint: "胸痛 40 分钟，大汗", Suspected: []string{ConditionSTEMI},
	Triage: 2, Updated: time.Date(2026, 12, 2, 4, 30, 0, 0, time.UTC)}

// TestBoardShowsTheLiveBoxWithItsPreAlert: a box publishing through the real
// pipeline shows on the board, live, with its patient card, and its STEMI card raises
// the alert banner and the sound until acknowledged; the board switches language.
func TestBoardShowsTheLiveBoxWithItsPreAlert(t *testing.T) {
	h := startHub(t)
	startBox(t, h, "amb-07")
	h.setCard("amb-07", stemiCard)
	h.setDispatch(BoxSummary{Device: "amb-07", Name: "急救 07", Mission: MissionTransporting, ETA: time.Now().Add(6*time.Minute + 20*time.Second),
		Link: &Link{Quality: LinkGood, RTTMillis: 48}})
	// A box on its way that does not stream: dispatch knows it, the crew's card
	// suspects a stroke, last known well 50 minutes ago.
	lkw := time.Now().Add(-50 * time.Minute)
	h.setDispatch(BoxSummary{Device: "amb-12", Name: "急救 12", Mission: MissionDispatched, LastContact: time.Now().Add(-95 * time.Second),
		ETA: time.Now().Add(14*time.Minute + 20*time.Second), Link: &Link{Quality: LinkPoor, RTTMillis: 210}})
	h.setCard("amb-12", &PatientCard{AgeBand: "70-79", Sex: "female", Complaint: "左侧肢体无力，言语不清", Suspected: []string{ConditionStroke},
		LastKnownWell: lkw, Triage: 1, Updated: time.Now()})
	// One with no card and nothing from dispatch yet but its stream's absence.
	h.setDispatch(BoxSummary{Device: "amb-03", Mission: MissionOnScene, LastContact: time.Now().Add(-20 * time.Second)})
	tab := peers.Browser(t, peers.BrowserOptions{})
	viewport(t, tab, 1920, 1080)
	peers.Navigate(t, tab, h.srv.URL+"/ed/")

	wait.For(t, 10*time.Second, "the board to list amb-07 with its STEMI alert", func() bool {
		return peers.Eval[int](t, tab, `document.querySelectorAll('.box.alerting[data-device="amb-07"]').length`) == 1 &&
			peers.Eval[int](t, tab, `window.edBoard.alerts.filter(a => a.condition === "stemi").length`) == 1
	})
	banner := peers.Eval[string](t, tab, `document.getElementById("alerts").textContent`)
	if !strings.Contains(banner, "STEMI") || !strings.Contains(banner, "导管室") {
		t.Errorf("alert banner %q: want the STEMI pre-alert in Chinese", banner)
	}
	if n := peers.Eval[int](t, tab, `window.edBoard.beeps()`); n < 1 {
		t.Errorf("the STEMI alert sounded %d times, want at least once", n)
	}
	order := peers.Eval[[]string](t, tab, `[...document.querySelectorAll(".box")].map(b => b.dataset.device)`)
	if strings.Join(order, " ") != "amb-07 amb-12 amb-03" {
		t.Errorf("board order %v: want the pre-alerts first, soonest first, then the rest", order)
	}
	for device, wants := range map[string][]string{
		"amb-07": {"急救 07", "直播中", "转运中", "胸痛 40 分钟", "60-69", "男", "2 级", "良好", "48 ms", "6 分钟后"},
		"amb-12": {"急救 12", "未直播", "出车中", "差", "70-79", "女", "1 级", "卒中", "最后正常时间", "50 分钟前", "秒前", "14 分钟后"},
		"amb-03": {"amb-03", "到达现场", "尚无患者信息", "秒前"},
	} {
		row := peers.Eval[string](t, tab, `document.querySelector('.box[data-device="`+device+`"]').textContent`)
		for _, want := range wants {
			if !strings.Contains(row, want) {
				t.Errorf("board row %q lacks %q", row, want)
			}
		}
		if strings.Contains(row, "MDC_") {
			t.Errorf("board row shows an MDC identifier: %q", row)
		}
	}
	if n := peers.Eval[int](t, tab, `window.edBoard.alerts.filter(a => a.condition === "stroke" && a.device === "amb-12").length`); n != 1 {
		t.Errorf("the stroke pre-alert of amb-12 is not raised")
	}
	screenshot(t, tab, "ed-board.png")
	viewport(t, tab, 1180, 820)
	screenshot(t, tab, "ed-board-tablet.png")

	peers.Eval[bool](t, tab, `document.getElementById("lang").click(), true`)
	if got := peers.Eval[string](t, tab, `document.querySelector("h1").textContent`); got != "Incoming ambulances" {
		t.Errorf("after the language toggle the title is %q", got)
	}
	wait.For(t, 5*time.Second, "the row in English", func() bool {
		return strings.Contains(peers.Eval[string](t, tab, `document.querySelector('.box[data-device="amb-07"]').textContent`), "Transporting")
	})
	peers.Eval[bool](t, tab, `document.querySelectorAll("#alerts .ack").forEach(b => b.click()), true`)
	wait.For(t, 5*time.Second, "the acknowledged alerts to go", func() bool {
		return peers.Eval[int](t, tab, `window.edBoard.alerts.length`) == 0
	})
	peers.Navigate(t, tab, h.srv.URL+"/ed/")
	wait.For(t, 5*time.Second, "the board to come back in English, alert still acknowledged", func() bool {
		return peers.Eval[int](t, tab, `window.edBoard.polls`) > 0 && peers.Eval[string](t, tab, `document.querySelector("h1").textContent`) == "Incoming ambulances"
	})
	if n := peers.Eval[int](t, tab, `window.edBoard.alerts.length`); n != 0 {
		t.Errorf("the acknowledged alert came back after a reload")
	}

	h.failBoxes.Store(true)
	wait.For(t, 15*time.Second, "the board to say it may be out of date", func() bool {
		return !peers.Eval[bool](t, tab, `document.getElementById("hub-lost").hidden`)
	})
	h.failBoxes.Store(false)
	wait.For(t, 10*time.Second, "the warning to go once the hub answers", func() bool {
		return peers.Eval[bool](t, tab, `document.getElementById("hub-lost").hidden`)
	})

	// The session ends (idle timeout): the board goes to the sign-in page instead of
	// going stale.
	h.signedOut.Store(true)
	wait.For(t, 10*time.Second, "the board to give way to the sign-in page", func() bool {
		return peers.Eval[bool](t, tab, `!!document.getElementById("signin")`)
	})
}

// waveStats is what the view's sweep reports per wave.
type waveStats struct {
	Rate        float64 `json:"rate"`
	Drawn       int     `json:"drawn"`
	DrawnPerSec float64 `json:"drawnPerSec"`
	LastTime    float64 `json:"lastTime"`
	Gaps        int     `json:"gaps"`
	Late        int     `json:"late"`
	LastGap     *struct {
		From    float64 `json:"from"`
		To      float64 `json:"to"`
		FromX   float64 `json:"fromX"`
		ToX     float64 `json:"toX"`
		Flagged bool    `json:"flagged"`
	} `json:"lastGap"`
}

func waves(t *testing.T, tab context.Context) map[string]waveStats {
	return peers.Eval[map[string]waveStats](t, tab, `window.edView.waves`)
}

// TestViewShowsTheLivePatient opens the patient view of a box publishing through
// the real pipeline (the embedded H.264 clip, a simulated monitor on the telemetry
// bus, the vitals outbox, the WHIP publisher, the hub's SFU and archive) in Chromium:
// video frames decode; the ECG, pleth and respiration are drawn at the simulator's
// rates; the numerics are the simulator's, labelled as clinicians read them; the
// trends come from the hub's history; the STEMI card shows; and a link loss on the
// wave channel is drawn as a blank gap, not bridged.
func TestViewShowsTheLivePatient(t *testing.T) {
	h := startHub(t)
	box := startBox(t, h, "amb-07")
	h.setCard("amb-07", stemiCard)
	h.setDispatch(BoxSummary{Device: "amb-07", Name: "急救 07", Mission: MissionTransporting, ETA: time.Now().Add(6*time.Minute + 20*time.Second)})
	wait.For(t, 10*time.Second, "the hub to hold some vitals history", func() bool {
		res, err := h.srv.Client().Get(h.srv.URL + "/api/v1/devices/amb-07/vitals")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		return res.StatusCode == 200 && strings.Count(readAll(res.Body), `"type":"numeric"`) >= 6
	})
	tab := peers.Browser(t, peers.BrowserOptions{})
	viewport(t, tab, 1920, 1080)
	opened := time.Now()
	peers.Navigate(t, tab, h.srv.URL+"/ed/box/amb-07")

	wait.For(t, 15*time.Second, "video frames to decode", func() bool {
		return peers.Eval[int](t, tab, `Promise.resolve(window.edView && window.edView.videoStats()).then(s => s ? s.framesDecoded : 0)`) > 20
	})
	if w := peers.Eval[int](t, tab, `window.edView.videoStats().then(s => s.frameWidth)`); w != 640 {
		t.Errorf("decoded frame width %d, want the clip's 640", w)
	}
	if n := peers.Eval[int](t, tab, `window.edView.history`); n == 0 {
		t.Errorf("the view took no message from the hub's history")
	}
	if first := time.UnixMilli(int64(peers.Eval[float64](t, tab, `window.edView.pickUp()`))); opened.Sub(first) < 2*time.Second {
		t.Errorf("the view's vitals start at %v, the page opened at %v: the history since pick-up is missing", first, opened)
	}
	checkNumerics(t, tab, box.monitor)
	checkRates(t, tab)
	if n := peers.Eval[int](t, tab, `window.edView.trendPoints`); n == 0 {
		t.Errorf("no trend point drawn")
	}
	page := peers.Eval[string](t, tab, `document.body.innerText`)
	for _, want := range []string{"HR", "SpO₂", "NIBP", "EtCO₂", "RR", "Temp", "STEMI 预警", "胸痛 40 分钟", "急救 07", "转运中", "6 分钟后"} {
		if !strings.Contains(page, want) {
			t.Errorf("the view does not show %q", want)
		}
	}
	if strings.Contains(page, "MDC_") {
		t.Errorf("the view shows an MDC identifier")
	}
	checkCalibration(t, tab)
	checkEnglish(t, tab)
	checkLeads(t, tab)
	if os.Getenv("LIFELINE_SCREENSHOTS") != "" {
		fullSweep(t, tab, 15)
	}
	checkAlarm(t, tab, box.monitor)
	checkGap(t, tab, box)
	checkLostChunk(t, tab, box)
	screenshot(t, tab, "ed-view.png")
	checkNoData(t, tab, box)
	viewport(t, tab, 1180, 820)
	fullSweep(t, tab, 9)
	screenshot(t, tab, "ed-view-tablet.png")
	checkReconnect(t, tab, h)
}

// fullSweep waits until the ECG has been drawn for the given seconds more: a resize
// starts the traces afresh, and a screenshot should show a whole sweep.
func fullSweep(t *testing.T, tab context.Context, seconds int) {
	t.Helper()
	drawn := waves(t, tab)["131330"].Drawn
	wait.For(t, time.Duration(seconds+10)*time.Second, "a whole sweep drawn", func() bool {
		return waves(t, tab)["131330"].Drawn > drawn+seconds*ecgRate
	})
}

func readAll(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}
