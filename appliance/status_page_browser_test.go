package appliance

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
	"lifeline/stream/vitals"
	"lifeline/telemetry"
)

// tap presses what selector finds as a finger would, which also unlocks the page's sound.
func tap(t *testing.T, tab context.Context, selector string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(selector))); err != nil {
		t.Fatalf("tap %s: %v", selector, err)
	}
}

// textOf is the text the crew sees in the element selector finds ("" if none).
func textOf(t *testing.T, tab context.Context, selector string) string {
	t.Helper()
	sel, _ := json.Marshal(selector)
	return peers.Eval[string](t, tab, `(document.querySelector(`+string(sel)+`) || {innerText: ""}).innerText`)
}

func waitText(t *testing.T, tab context.Context, selector, what string, cond func(string) bool) string {
	t.Helper()
	var last string
	wait.For(t, 15*time.Second, what, func() bool {
		last = textOf(t, tab, selector)
		return cond(last)
	})
	return last
}

// openStatusPage loads the page and waits until it has read the box's status.
func openStatusPage(t *testing.T, tab context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	wait.For(t, 15*time.Second, "the banner to show the box's state", func() bool {
		return peers.Eval[string](t, tab, `document.getElementById("banner").className`) != "unknown"
	})
}

func crewView(t *testing.T, b *pageBox) CrewView {
	t.Helper()
	res, err := http.Get(b.url + strings.TrimPrefix(CrewPath, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v CrewView
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestStatusPageInChromium drives the box's page in Chromium as the crew would: the
// vitals under their clinical names, the hospital's messages with their chime and the
// read receipt's refusal without a stream, the patient card saved across a restart and
// refused in words, the 12-lead button, and every string in both languages.
func TestStatusPageInChromium(t *testing.T) {
	box := startPageBox(t)
	tab := peers.Browser(t, peers.BrowserOptions{Timeout: 3 * time.Minute})
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	openStatusPage(t, tab, box.url)
	if lang := peers.Eval[string](t, tab, `document.documentElement.lang`); lang != "zh-CN" {
		t.Fatalf("the page opens in %q, want zh-CN", lang)
	}
	t.Run("vitals", func(t *testing.T) { checkPageVitals(t, tab, box) })
	t.Run("messages", func(t *testing.T) { checkPageMessages(t, tab, box) })
	t.Run("card", func(t *testing.T) { checkPageCard(t, tab, box) })
	t.Run("ecg", func(t *testing.T) { checkPageECG(t, tab, box) })
	t.Run("mission", func(t *testing.T) { checkPageMission(t, tab, box) })
	t.Run("languages", func(t *testing.T) { checkPageLanguages(t, tab) })
	t.Run("restart", func(t *testing.T) { checkCardSurvivesRestart(t, tab, box) })
}

// checkPageVitals publishes what a monitor would on the box's bus and reads the table:
// the PI it last sent 90 s before the rest shows its age.
func checkPageVitals(t *testing.T, tab context.Context, box *pageBox) {
	now := time.Now()
	num := func(code telemetry.Code, v float64, unit string, ch telemetry.Channel, invalid bool) *telemetry.Numeric {
		return &telemetry.Numeric{Code: code, Value: v, Unit: unit, Channel: ch, ReceiveTime: now, Invalid: invalid}
	}
	pi := num(telemetry.MDC_BLD_PERF_INDEX, 2.4, telemetry.UnitPercent, telemetry.Channel{}, false)
	pi.ReceiveTime = now.Add(-90 * time.Second)
	box.edge.bus.Publish("monitor", pi)
	for _, n := range []*telemetry.Numeric{
		num(telemetry.MDC_ECG_HEART_RATE, 72, telemetry.UnitPerMinute, telemetry.Channel{}, false),
		num(telemetry.MDC_PULS_OXIM_SAT_O2, 97, telemetry.UnitPercent, telemetry.Channel{}, false),
		num(telemetry.MDC_AWAY_CO2_ET, 35, telemetry.UnitMMHg, telemetry.Channel{}, false),
		num(telemetry.MDC_RESP_RATE, 18, telemetry.UnitPerMinute, telemetry.Channel{}, false),
		num(telemetry.MDC_TEMP, 36.8, telemetry.UnitCelsius, telemetry.Channel{ID: "T1", Label: "T1"}, false),
		num(telemetry.MDC_TEMP, 35.2, telemetry.UnitCelsius, telemetry.Channel{ID: "T2", Label: "T2"}, true),
	} {
		box.edge.bus.Publish("monitor", n)
	}
	for _, n := range (telemetry.NIBP{Sys: 130, Dia: 82, Mean: 98, ReceiveTime: now, Measured: now}).Numerics() {
		box.edge.bus.Publish("monitor", n)
	}
	shown := waitText(t, tab, "#vitals", "the vitals on the page", func(s string) bool { return strings.Contains(s, "130/82 (98)") })
	for _, want := range []string{"HR", "72", "bpm", "SpO₂", "97", "%", "NIBP", "mmHg", "EtCO₂", "RR", "18", "次/分", "Temp T1", "36.8", "°C", "Temp T2", "35.2"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the vitals lack %q:\n%s", want, shown)
		}
	}
	if strings.Contains(shown, "MDC_") || strings.Contains(shown, "mm[Hg]") || strings.Contains(shown, "Cel") {
		t.Errorf("the vitals show an identifier or a UCUM code:\n%s", shown)
	}
	if rows := peers.Eval[int](t, tab, `document.querySelectorAll("#vitals tr").length`); rows != 8 {
		t.Errorf("%d rows, want 8 (NIBP's three values on one)", rows)
	}
	stale := peers.Eval[[]string](t, tab, `[...document.querySelectorAll("#vitals tr.stale")].map((e) => e.innerText)`)
	if len(stale) != 1 || !strings.Contains(stale[0], "PI") || !strings.Contains(stale[0], "90 秒前的数值") {
		t.Errorf("rows shown as old %q, want only PI, 90 s old", stale)
	}
	questionable := peers.Eval[[]string](t, tab, `[...document.querySelectorAll("#vitals tr.questionable th")].map((e) => e.innerText)`)
	if len(questionable) != 1 || !strings.Contains(questionable[0], "T2") {
		t.Errorf("questionable rows %q, want only Temp T2", questionable)
	}
}

// checkPageMessages has the hospital's desk take two messages, as the live stream hands
// them over, and checks the crew sees them newest first, hears them, and is told in
// words why the read receipt cannot go without a stream.
func checkPageMessages(t *testing.T, tab context.Context, box *pageBox) {
	tap(t, tab, "#hospital-section h2") // the crew's first touch unlocks the sound
	wait.For(t, 5*time.Second, "the sound unlocked", func() bool {
		return peers.Eval[bool](t, tab, `document.getElementById("sound").hidden`)
	})
	before := peers.Eval[int](t, tab, `window.statusPage.chimes`)
	box.edge.crew.noteControl(vitals.Control{Seq: 1, Type: vitals.TypeText, ID: "m1", Text: "准备除颤", From: "Dr Li", HubTime: time.Now()})
	waitText(t, tab, "#hospital-messages", "the first message", func(s string) bool { return strings.Contains(s, "准备除颤") })
	box.edge.crew.noteControl(vitals.Control{Seq: 2, Type: vitals.TypeText, ID: "m2", Text: "请给予阿司匹林 300 mg", From: "Dr Li", HubTime: time.Now()})
	waitText(t, tab, "#hospital-messages", "the second message", func(s string) bool { return strings.Contains(s, "阿司匹林") })
	order := peers.Eval[[]string](t, tab, `[...document.querySelectorAll("#hospital-messages li.unread")].map((li) => li.dataset.seq)`)
	if strings.Join(order, ",") != "2,1" {
		t.Errorf("unread messages in the order %q, want newest first: 2,1", order)
	}
	if from := textOf(t, tab, `#hospital-messages li[data-seq="2"] .from`); !strings.Contains(from, "来自 Dr Li") {
		t.Errorf("the message does not say who sent it: %q", from)
	}
	wait.For(t, 5*time.Second, "a chime for each new message", func() bool {
		return peers.Eval[int](t, tab, `window.statusPage.chimes`) >= before+2
	})
	tap(t, tab, `button.read[data-seq="2"]`)
	waitText(t, tab, `#hospital-messages li[data-seq="2"]`, "the refusal of the read receipt, in words", func(s string) bool {
		return strings.Contains(s, "直播尚未开始")
	})
	if n := peers.Eval[int](t, tab, `document.querySelectorAll("#hospital-messages li.unread").length`); n != 2 {
		t.Errorf("%d messages highlighted after a receipt that could not go, want 2", n)
	}
	if v := crewView(t, box); len(v.Messages) != 2 || v.Messages[1].Read {
		t.Errorf("the box marked a message read that the hospital was not told of: %+v", v.Messages)
	}
}

// checkPageCard fills the card with the toggle buttons, saves it, and has a too long
// complaint refused in words.
func checkPageCard(t *testing.T, tab context.Context, box *pageBox) {
	if peers.Eval[bool](t, tab, `!document.getElementById("card-lkw").hidden`) {
		t.Error("the last-known-well picker shows without a suspected stroke")
	}
	for _, sel := range []string{`#card-suspected [data-choice="stemi"]`, `#card-suspected [data-choice="stroke"]`,
		`#card-triage [data-choice="2"]`, `#card-age [data-choice="60-69"]`, `#card-sex [data-choice="male"]`,
		`#card-sex [data-choice="female"]`, `#card-lkw-quick [data-choice="lkw-30"]`} {
		tap(t, tab, sel)
	}
	if err := chromedp.Do(tab, chromedp.SendKeys(chromedp.CSS("#card-complaint"), "胸痛 40 分钟")); err != nil {
		t.Fatal(err)
	}
	tap(t, tab, "#card-save")
	waitText(t, tab, "#card-answer", "the card saved", func(s string) bool { return strings.Contains(s, "已保存在本机") })
	card := crewView(t, box).Card
	lkwAgo := time.Since(card.LastKnownWell)
	if card.AgeBand != "60-69" || card.Sex != "female" || strings.Join(card.Suspected, ",") != "stemi,stroke" ||
		card.Triage != 2 || card.Complaint != "胸痛 40 分钟" || lkwAgo < 29*time.Minute || lkwAgo > 32*time.Minute {
		t.Errorf("the box has the card %+v (last known well %s ago)", card, lkwAgo)
	}

	// 100 Chinese characters are 300 bytes: more than the box sends.
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`(() => { const c = document.getElementById("card-complaint");
		c.value = "痛".repeat(100); c.dispatchEvent(new Event("input")); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	tap(t, tab, "#card-save")
	shown := waitText(t, tab, "#card-answer", "the refusal", func(s string) bool { return strings.Contains(s, "未保存") })
	if !strings.Contains(shown, "300 bytes") {
		t.Errorf("the refusal does not say why: %q", shown)
	}
	if c := crewView(t, box).Card; c.Complaint != "胸痛 40 分钟" {
		t.Errorf("a refused card changed the box's: %+v", c)
	}
	if !strings.Contains(textOf(t, tab, "#card-status"), "有未保存的更改") {
		t.Error("the page does not say the refused change is unsaved")
	}
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`(() => { const c = document.getElementById("card-complaint");
		c.value = "胸痛 40 分钟"; c.dispatchEvent(new Event("input")); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	tap(t, tab, "#card-save")
	waitText(t, tab, "#card-answer", "the card saved again", func(s string) bool { return strings.Contains(s, "已保存在本机") })
}

// checkPageECG presses the 12-lead button: the acquisition shows at once (and fails
// some 15 s later, as no monitor sends an ECG here). A doctor's request shows with the
// doctor's name.
func checkPageECG(t *testing.T, tab context.Context, box *pageBox) {
	tap(t, tab, "#ecg-button")
	shown := waitText(t, tab, "#ecgs", "the acquisition on the page", func(s string) bool {
		return strings.Contains(s, "正在采集") || strings.Contains(s, "失败")
	})
	if !strings.Contains(shown, "急救人员发起") {
		t.Errorf("the acquisition does not say the crew asked for it: %q", shown)
	}
	if state := peers.Eval[string](t, tab, `document.querySelector("#ecgs li").dataset.state`); state != vitals.ECGAcquiring && state != vitals.ECGFailed {
		t.Errorf("acquisition state %q", state)
	}
	box.edge.crew.noteControl(vitals.Control{Seq: 3, Type: vitals.TypeECGRequest, ID: "e3", From: "Dr Wang", HubTime: time.Now()})
	waitText(t, tab, `#ecgs li[data-ref="3"]`, "the doctor's request on the page", func(s string) bool {
		return strings.Contains(s, "Dr Wang 请求") && (strings.Contains(s, "正在采集") || strings.Contains(s, "失败"))
	})
	if order := peers.Eval[[]string](t, tab, `[...document.querySelectorAll("#ecgs li")].map((li) => li.dataset.ref)`); strings.Join(order, ",") != "3,0" {
		t.Errorf("acquisitions in the order %q, want the newest first: 3,0", order)
	}
}

// checkPageMission presses a mission button: the box takes the new state and the page
// says so, in the crew's language.
func checkPageMission(t *testing.T, tab context.Context, box *pageBox) {
	waitText(t, tab, "#position", "the mission and destination on the page", func(s string) bool {
		return strings.Contains(s, "待命") && strings.Contains(s, "省人民医院")
	})
	tap(t, tab, `#mission-buttons [data-state="dispatched"]`)
	waitText(t, tab, "#mission-answer", "the new mission on the page", func(s string) bool { return s == "任务：已派车" })
	wait.For(t, 5*time.Second, "the pressed state marked current", func() bool {
		return peers.Eval[string](t, tab, `document.querySelector("#mission-buttons .current").dataset.state`) == "dispatched"
	})
	res, err := http.Get(box.url + strings.TrimPrefix(PositionPath, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var report BoxReport
	if err := json.NewDecoder(res.Body).Decode(&report); err != nil || report.Mission.State != "dispatched" {
		t.Errorf("the box's mission after the press: %+v %v", report.Mission, err)
	}
}

// untranslatedJS lists the visible text of the page in the page's language that is
// neither the box's own data (data-raw) nor one of the dictionary's strings, and checks
// that every data-i18n element shows its key's string. The language toggle names the
// other language in that language, marked by its lang attribute.
const untranslatedJS = `(async () => {
  const { dict, lang } = await import("/static/js/i18n.js");
  const words = dict[lang()];
  const templates = Object.values(words).map((s) => new RegExp("^" +
    s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\\\{\w+\\\}/g, "[\\s\\S]*") + "$"));
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    const parent = n.parentElement;
    if (!/\p{L}/u.test(text) || !parent.checkVisibility() || parent.closest("[data-raw]") ||
      parent.closest("[lang]").lang !== document.documentElement.lang) continue;
    if (!templates.some((re) => re.test(text))) bad.push(text);
  }
  for (const e of document.querySelectorAll("[data-i18n]")) {
    if (e.textContent !== words[e.dataset.i18n]) bad.push(e.dataset.i18n + " shows " + e.textContent);
  }
  return bad;
})()`

// visibleTextJS is the visible text of the page in the page's language that is not the
// box's data.
const visibleTextJS = `(() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const e = n.parentElement;
    if (e.checkVisibility() && !e.closest("[data-raw]") && e.closest("[lang]").lang === document.documentElement.lang) {
      out.push(n.textContent.trim());
    }
  }
  return out.filter(Boolean).join("\n");
})()`

// checkPageLanguages checks every visible string in Chinese, switches to English with
// the toggle, checks again, and that the choice survives a reload.
func checkPageLanguages(t *testing.T, tab context.Context) {
	if bad := peers.Eval[[]string](t, tab, untranslatedJS); len(bad) > 0 {
		t.Errorf("in Chinese, text not from the dictionary: %q", bad)
	}
	zhText := peers.Eval[string](t, tab, visibleTextJS)
	peers.Eval[bool](t, tab, `window.scrollTo(0, 0), true`)
	screenshot(t, tab, "box-status-zh.png")
	tap(t, tab, "#lang")
	wait.For(t, 5*time.Second, "the page in English", func() bool {
		return peers.Eval[string](t, tab, `document.documentElement.lang`) == "en"
	})
	if bad := peers.Eval[[]string](t, tab, untranslatedJS); len(bad) > 0 {
		t.Errorf("in English, text not from the dictionary: %q", bad)
	}
	enText := peers.Eval[string](t, tab, visibleTextJS)
	for _, line := range strings.Split(enText, "\n") {
		if strings.ContainsFunc(line, isHan) {
			t.Errorf("Chinese left in the English page: %q", line)
		}
	}
	if !strings.ContainsFunc(zhText, isHan) || !strings.Contains(enText, "Messages from the hospital") || !strings.Contains(enText, "Patient card") {
		t.Errorf("the two languages do not differ as they should:\nzh-CN:\n%s\nen:\n%s", zhText, enText)
	}
	peers.Eval[bool](t, tab, `window.scrollTo(0, 0), true`)
	screenshot(t, tab, "box-status-en.png")
	openStatusPage(t, tab, peers.Eval[string](t, tab, `location.href`))
	if lang := peers.Eval[string](t, tab, `document.documentElement.lang`); lang != "en" {
		t.Errorf("after a reload the page is in %q, want the crew's choice, en", lang)
	}
	tap(t, tab, "#lang")
}

func isHan(r rune) bool { return r >= 0x4e00 && r <= 0x9fff }

// checkCardSurvivesRestart restarts the box on its data directory: the card the crew
// saw saved is still there, in the API and pressed on the page. Then the crew clears it
// for the next patient.
func checkCardSurvivesRestart(t *testing.T, tab context.Context, box *pageBox) {
	box.restart()
	if c := crewView(t, box).Card; c.AgeBand != "60-69" || strings.Join(c.Suspected, ",") != "stemi,stroke" || c.Complaint != "胸痛 40 分钟" {
		t.Fatalf("after a restart the box has the card %+v", c)
	}
	openStatusPage(t, tab, box.url)
	wait.For(t, 10*time.Second, "the saved card pressed on the page", func() bool {
		return peers.Eval[string](t, tab, `[...document.querySelectorAll("#card [aria-pressed=true]")].map((b) => b.dataset.choice).join(",")`) == "stemi,stroke,2,60-69,female"
	})
	tap(t, tab, "#card-clear")
	pressed := peers.Eval[int](t, tab, `document.querySelectorAll("#card [aria-pressed=true]").length`)
	if complaint := peers.Eval[string](t, tab, `document.getElementById("card-complaint").value`); pressed != 0 || complaint != "" {
		t.Errorf("after Clear, %d buttons pressed and complaint %q", pressed, complaint)
	}
	tap(t, tab, "#card-save")
	waitText(t, tab, "#card-answer", "the empty card saved", func(s string) bool { return strings.Contains(s, "已保存在本机") })
	if c := crewView(t, box).Card; c.AgeBand != "" || len(c.Suspected) != 0 || c.Complaint != "" || c.Updated.IsZero() {
		t.Errorf("after Clear and Save the box has the card %+v", c)
	}
}

// screenshot saves the tab as dir/name when LIFELINE_SCREENSHOTS names a directory
// (LIFELINE_SCREENSHOTS=$PWD/docs).
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
