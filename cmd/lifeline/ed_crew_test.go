package main

import (
	"bytes"
	"context"
	enc "encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"lifeline/internal/peers"
	"lifeline/internal/signin"
	"lifeline/internal/wait"
)

// crewSystem is a hub and a box run as the real binary with everything the ED's
// conversation with the crew needs: the embedded camera clip, a simulated 12-lead HL7
// monitor connecting over TCP, talk-back into a file, and a doctor's sign-in link.
type crewSystem struct {
	*testSystem
	viewer   string // the hub's viewer listener
	heard    string // the box's talk-back sink writes here
	doctor   string // a one-time sign-in link for dr.li (doctor)
	observer string // a one-time sign-in link for obs.chen (observer)
}

func newCrewSystem(t *testing.T, device string) *crewSystem {
	t.Helper()
	monitor := freePort(t)
	s := &crewSystem{viewer: freePort(t)}
	s.heard = filepath.Join(t.TempDir(), "heard.pcm")
	s.testSystem = newTestSystem(t, device,
		fmt.Sprintf("[viewer]\nlisten = %q\n[stream]\nlisten = %q\n", s.viewer, freePort(t)),
		fmt.Sprintf("[stream]\ntalkback_sink = \"tee %s\"\n[[camera]]\nurl = \"clip:\"\n[[monitor]]\nport = \"tcp://%s\"\nprotocol = \"hl7\"\n", s.heard, monitor))
	user := func(stdin string, args ...string) string {
		t.Helper()
		code, out, stderr := lifelineStdin(t, stdin, append(append([]string{"hub", "user"}, args...), "--config", s.hubConf, "--data", s.hubData)...)
		if code != 0 {
			t.Fatalf("hub user %v: %d %s", args, code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}
	user("correct horse battery\n", "add", "--user", "dr.li", "--name", "Dr Li", "--role", "doctor")
	user("correct horse battery\n", "add", "--user", "obs.chen", "--name", "Chen", "--role", "observer")
	s.doctor = user("", "link", "--user", "dr.li")
	s.observer = user("", "link", "--user", "obs.chen")

	s.startHub(t)
	wait.For(t, 15*time.Second, "hub serving", func() bool { return s.hubReports(t, "hub-server", "ready") })
	s.enrolBox(t)
	s.startBox(t)
	start(t, "sim", "monitor", "--protocol", "hl7", "--connect", monitor, "--12-lead")
	wait.For(t, 60*time.Second, "the box's live stream connected to the hub", func() bool {
		st, _ := s.boxStatus(t).service("live-stream")
		return st == "ready"
	})
	return s
}

// signIn opens a sign-in link in a new Chromium and waits until the session holds.
func signIn(t *testing.T, link string, opts peers.BrowserOptions) (tab context.Context) {
	t.Helper()
	opts.Flags = map[string]any{"ignore-certificate-errors": true}
	tab = peers.Browser(t, opts)
	// Script errors of the pages, for the failure message: a module that fails to
	// load leaves the page blank without any other sign.
	chromedp.Listen(tab, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			desc := ""
			if d.Exception != nil {
				desc = d.Exception.Description
			}
			t.Logf("page exception at %s:%d: %s %s", d.URL, d.LineNumber, d.Text, desc)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				for _, a := range e.Args {
					t.Logf("page console %s: %s", e.Type, a.Value)
				}
			}
		}
	})
	if err := chromedp.Do(tab, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	// The link page leaves for "/" once the cookie is set; the caller's next
	// navigation would abort that one (net::ERR_ABORTED), so wait until the browser
	// has arrived and the page has loaded, not only until the session exists.
	wait.For(t, 15*time.Second, "the sign-in link to sign the browser in", func() bool {
		user, err := chromedp.Run(tab, chromedp.Evaluate[string](
			`location.pathname === "`+signin.LinkPagePath+`" || document.readyState !== "complete" ? "" :
			 fetch("/api/v1/whoami").then(r => r.ok ? r.json().then(w => w.user) : "")`, chromedp.EvalAwaitPromise))
		return err == nil && user != ""
	})
	return tab
}

// boxCrew is GET /api/v1/crew on the box.
type boxCrew struct {
	Messages []struct {
		Seq  uint64
		Type string
		Text string
		From string
		Read bool
	}
	ECGs []struct {
		Ref    uint64
		State  string
		Detail string
		SOP    string
	}
}

// TestEDTalksWithTheCrew runs the ED's conversation with an ambulance through the
// binary, with Chromium as the doctor: guidance reaches the box's page and comes back
// read; the crew's patient card with a STEMI reaches the board with its alert; the
// doctor's 12-lead request comes back as a DICOM ECG of twelve leads the view draws;
// the doctor's fake microphone reaches the box's talk-back sink with the tone's energy;
// and an observer may watch but not talk.
func TestEDTalksWithTheCrew(t *testing.T) {
	wav := filepath.Join(t.TempDir(), "mic.wav")
	ffmpeg := peers.Need(t, "ffmpeg")[0]
	if out, err := exec.Command(ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "20", wav).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, out)
	}
	s := newCrewSystem(t, "AMB-CREW")
	tab := signIn(t, s.doctor, peers.BrowserOptions{FakeAudio: wav})
	base := origin(s.doctor)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/ed/box/AMB-CREW")); err != nil {
		t.Fatal(err)
	}
	err := wait.Until(30*time.Second, func() bool {
		frames := peers.Eval[int](t, tab, `Promise.resolve(window.edView && window.edView.videoStats()).then(s => s ? s.framesDecoded : 0)`)
		return frames > 5
	})
	if err != nil {
		t.Fatalf("the view did not play the box's video: %s", peers.Eval[string](t, tab, `JSON.stringify(window.edView || null)`))
	}

	// Guidance: the doctor types, the box's page has it, the crew reads it, the view
	// shows it read.
	peers.Eval[bool](t, tab, `(() => { document.getElementById("crew-text").value = "Give aspirin 300 mg"; document.getElementById("crew-send").click(); return true; })()`)
	var crew boxCrew
	wait.For(t, 15*time.Second, "the guidance on the box", func() bool {
		getJSON(t, "http://"+s.edgeHTTP+"/api/v1/crew", &crew)
		return len(crew.Messages) == 1 && crew.Messages[0].Text == "Give aspirin 300 mg" && crew.Messages[0].From == "Dr Li"
	})
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/api/v1/crew/messages/%d/read", s.edgeHTTP, crew.Messages[0].Seq), strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("crew reads the message: %v %v", err, res)
	}
	wait.For(t, 15*time.Second, "the read receipt in the doctor's view", func() bool {
		return peers.Eval[bool](t, tab, `!!document.querySelector("#crew-notes .receipt.read")`)
	})

	// The patient card: the crew says STEMI on the box; the board alerts.
	card := `{"age_band":"60-69","sex":"male","complaint":"chest pain 40 min","suspected":["stemi"],"triage":1}`
	req, _ = http.NewRequest(http.MethodPut, "http://"+s.edgeHTTP+"/api/v1/crew/card", strings.NewReader(card))
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("the crew saves the card: %v %v", err, res)
	}
	board := signIn(t, s.observer, peers.BrowserOptions{})
	if err := chromedp.Do(board, chromedp.Navigate(base+"/ed/")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "the STEMI pre-alert on the board", func() bool {
		text := peers.Eval[string](t, board, `document.body.innerText`)
		return strings.Contains(text, "STEMI") && strings.Contains(text, "chest pain 40 min") && peers.Eval[int](t, board, `(window.edBoard && window.edBoard.alerts.length) || 0`) > 0
	})

	screenshot(t, board, "ed-board-stemi.png", 1920, 1080)

	// The observer watches, but may not talk to the crew.
	code := peers.Eval[int](t, board, `fetch("/ed/api/box/AMB-CREW/messages", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": "x"}, body: JSON.stringify({text: "hi"})}).then(r => r.status)`)
	if code != 403 {
		t.Fatalf("an observer (with a wrong CSRF token) sending guidance: %d, want 403", code)
	}
	me := peers.Eval[map[string]any](t, board, `fetch("/ed/api/me").then(r => r.json())`)
	code = peers.Eval[int](t, board, fmt.Sprintf(`fetch("/ed/api/box/AMB-CREW/ecg12", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": %q}, body: "{}"}).then(r => r.status)`, me["csrf_token"]))
	if code != 403 || me["may_talk"] != false {
		t.Fatalf("an observer requesting an ECG: %d (me %v), want 403", code, me)
	}

	// 12-lead on request: the button, the box acquires 10 s, the forwarder sends it
	// STAT, the hub shows it.
	requested := time.Now()
	peers.Eval[bool](t, tab, `(() => { document.getElementById("ecg12").click(); return true; })()`)
	var sop string
	wait.For(t, 60*time.Second, "the ECG at the hub, drawn in the view", func() bool {
		shown := peers.Eval[map[string]map[string]float64](t, tab, `window.edView.crew.ecgShown`)
		for k, v := range shown {
			sop = k
			return v["leads"] == 12 && v["rate"] > 0
		}
		return false
	})
	t.Logf("12-lead request to ECG at the hub: %s", time.Since(requested).Round(100*time.Millisecond))
	screenshot(t, tab, "ed-view-crew.png", 1920, 1080)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/ed/ecg/AMB-CREW/"+sop)); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 15*time.Second, "the ECG sheet drawn", func() bool {
		st := peers.Eval[map[string]any](t, tab, `window.edECG`)
		return st["state"] == "drawn" && st["leadsDrawn"] == float64(12) && st["seconds"].(float64) >= 9.5
	})
	screenshot(t, tab, "ed-ecg.png", 1400, 1000)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/ed/box/AMB-CREW")); err != nil {
		t.Fatal(err)
	}

	// Push-to-talk: nothing reaches the crew until the doctor holds the button; then
	// the tone does.
	wait.For(t, 30*time.Second, "the view connected again", func() bool {
		return peers.Eval[string](t, tab, `(window.edView && window.edView.state) || ""`) == "connected"
	})
	if fi, err := os.Stat(s.heard); err == nil && fi.Size() > 0 {
		t.Fatalf("the crew heard %d bytes before the doctor pressed talk", fi.Size())
	}
	peers.Eval[bool](t, tab, `window.edView.talk.start().then(() => true)`)
	wait.For(t, 20*time.Second, "a second of the doctor's voice at the box's sink", func() bool {
		fi, err := os.Stat(s.heard)
		return err == nil && fi.Size() >= 16000
	})
	peers.Eval[bool](t, tab, `window.edView.talk.stop().then(() => true)`)
	raw, _ := os.ReadFile(s.heard)
	pcm := make([]int16, len(raw)/2)
	enc.Read(bytes.NewReader(raw[:2*len(pcm)]), enc.LittleEndian, pcm)
	// The browser's noise suppression treats a steady tone as noise and lowers it over
	// time, so the test asks for the tone's frequency rather than its full loudness: the
	// 440 Hz of the fake microphone must stand far above 1 kHz, and above silence.
	var sum float64
	for _, v := range pcm {
		sum += float64(v) * float64(v)
	}
	rms := math.Sqrt(sum / float64(len(pcm)))
	tone, other := goertzel(pcm, 440, 8000), goertzel(pcm, 1000, 8000)
	if rms < 100 || tone < 20*other {
		t.Fatalf("the sink got %d samples, RMS %.0f, power at 440 Hz %.3g vs 1 kHz %.3g: not the doctor's tone", len(pcm), rms, tone, other)
	}
	t.Logf("talk-back: %d samples at the box, RMS %.0f, 440 Hz %.0f× the power at 1 kHz", len(pcm), rms, tone/other)

	audit, _ := os.ReadFile(filepath.Join(s.hubData, "audit.log"))
	for _, event := range []string{"crew.message.sent", "ecg.requested", "ecg.viewed", "stream.talkback.start", "ecg.requested.refused"} {
		if !bytes.Contains(audit, []byte(`"`+event+`"`)) {
			t.Errorf("audit log lacks %s", event)
		}
	}
	var lines []map[string]any
	for _, l := range bytes.Split(audit, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil {
			lines = append(lines, m)
		}
	}
	if len(lines) == 0 {
		t.Fatal("audit log unreadable")
	}
}

// goertzel is the power of pcm at freq (Hz), sampled at rate.
func goertzel(pcm []int16, freq, rate float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/rate)
	var s1, s2 float64
	for _, v := range pcm {
		s0 := float64(v) + k*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - k*s1*s2
}

// screenshot saves the tab at w×h as name in the directory LIFELINE_SCREENSHOTS names,
// when it names one (the README's pictures: LIFELINE_SCREENSHOTS=$PWD/docs).
func screenshot(t *testing.T, tab context.Context, name string, w, h int64) {
	t.Helper()
	dir := os.Getenv("LIFELINE_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := chromedp.Do(tab, chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let the page lay out and draw at the new size
	png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
