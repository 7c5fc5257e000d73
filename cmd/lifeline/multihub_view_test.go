package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestDoctorAtOneHubWatchesABoxAtAnother runs two hub processes on one PostgreSQL
// and a box (the embedded clip as its camera, a simulated HL7 monitor on a serial
// cable) publishing to hub A. Browsers reach A as https://127.0.0.1:… and B as
// https://localhost:…, two sites, so that B's session cookie is never sent to A: only
// the hand-over can sign the doctor in there.
//
// A doctor signed in at B only is refused by A; B's board shows the box live at A;
// opening it at B hands the doctor over to A, which opens the patient view with the
// video decoding and the monitor's heart rate; the hand-over is audited at B and its
// sign-in at A. A viewer token issued at B is answered 307 by B with A's WHEP URL, and
// plays there in a browser without any session. A hub with another viewer-token key
// is refused. Then the added delay: from opening the box to its first video frame,
// directly at A and through B's hand-over, several runs each, medians logged.
func TestDoctorAtOneHubWatchesABoxAtAnother(t *testing.T) {
	cable := peers.PlugCable(t)
	pg := peers.PostgresCluster(t)
	dir := t.TempDir()
	viewA, viewB := freePort(t), freePort(t)
	_, portB, _ := net.SplitHostPort(viewB)
	originA, originB := "https://"+viewA, "https://localhost:"+portB
	a := newSharedHub(t, dir, "hub-a", pg.DSN, fmt.Sprintf("[viewer]\nlisten = %q\npublic_url = %q\n", viewA, originA))
	b := newSharedHub(t, dir, "hub-b", pg.DSN, fmt.Sprintf("[viewer]\nlisten = %q\npublic_url = %q\n", viewB, originB))
	code := a.enrol(t, "AMB-VIEW")
	startSharedHubs(t, a, b)
	hubWithAnotherViewerKey(t, dir, pg.DSN, a)

	edgeHTTP := freePort(t)
	conf := writeFile(t, dir, "edge.toml", fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = %q\n[dicom]\nlisten = %q\n[[camera]]\nurl = \"clip:\"\n[[monitor]]\nport = %q\nprotocol = \"hl7\"\n",
		edgeHTTP, a.url(), freePort(t), cable.BoxEnd))
	box := filepath.Join(dir, "box")
	if code, _, stderr := lifeline(t, "edge", "enroll", "--config", conf, "--data", box, "--code", code); code != 0 {
		t.Fatalf("enrol the box at A: %d %s", code, stderr)
	}
	start(t, "sim", "monitor", "--protocol", "hl7", "--port", cable.DeviceEnd)
	start(t, "edge", "--config", conf, "--data", box)
	wait.For(t, 60*time.Second, "the box's live stream connected to hub A", func() bool {
		var es statusBody
		getJSON(t, "http://"+edgeHTTP+"/api/v1/status", &es)
		st, _ := es.service("live-stream")
		return st == "ready"
	})

	// The doctor's account is added at B, and signs in at B with B's link.
	if code, out, stderr := b.cmd(t, "correct horse battery\n", "user", "add", "--user", "dr.li", "--name", "李医生", "--role", "doctor", "--lang", "en"); code != 0 {
		t.Fatalf("user add at B: %d %s %s", code, out, stderr)
	}
	tab := signIn(t, originB+"/signin/link#"+linkToken(t, b, "dr.li"), peers.BrowserOptions{Timeout: 4 * time.Minute})
	peers.Navigate(t, tab, originA+"/api/v1/whoami")
	if body := peers.Eval[string](t, tab, "document.body.innerText"); !strings.Contains(body, "not signed in") {
		t.Fatalf("hub A to the doctor signed in at B only: %q, want it not signed in (B's cookie must not reach A)", body)
	}

	// B's board shows the box, live at hub A.
	peers.Navigate(t, tab, originB+"/ed/")
	wait.For(t, 20*time.Second, "AMB-VIEW on hub B's board, live at hub A", func() bool {
		text, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector('[data-device="AMB-VIEW"]')?.innerText || ""`))
		return err == nil && strings.Contains(text, "Live") && strings.Contains(text, "at "+a.addr)
	})

	// Opening it at B hands the doctor over to A, where it plays.
	handedOver := openBox(t, tab, originB, originA, "AMB-VIEW")
	if who := peers.Eval[string](t, tab, `fetch("/api/v1/whoami").then(r => r.json()).then(w => w.user)`); who != "dr.li" {
		t.Fatalf("signed in at hub A after the hand-over as %q, want dr.li", who)
	}
	wait.For(t, 30*time.Second, "the monitor's heart rate in the view at A", func() bool {
		hr, err := chromedp.Run(tab, chromedp.Evaluate[string](`(window.edView.numerics || {}).hr || ""`))
		return err == nil && hr != "" && hr != "—"
	})
	wantAuditLine(t, filepath.Join(b.data, "audit.log"), `"signin.handover_issued"`, `"device":"AMB-VIEW"`, `"user":"dr.li"`, originA)
	wantAuditLine(t, filepath.Join(a.data, "audit.log"), `"signin"`, `"method":"link"`, `"user":"dr.li"`)
	wantAuditLine(t, filepath.Join(a.data, "audit.log"), `"stream.view.requested"`, `"device":"AMB-VIEW"`, `"viewer":"user:dr.li"`)
	if trail := sharedTrail(t, pg.DSN); !slices.Contains(trail, "signin.handover_issued") {
		t.Error("the shared audit trail lacks the hand-over")
	}

	tokenFromBPlaysAtA(t, b, originB, originA, "AMB-VIEW")
	linkStaysAtItsHub(t, a, originA)

	// The added delay: the same browser, signed in at both now, opens the box
	// directly at A and through B's hand-over, alternately.
	direct := []time.Duration{}
	through := []time.Duration{handedOver}
	for range 5 {
		peers.Navigate(t, tab, "about:blank")
		direct = append(direct, openBox(t, tab, originA, originA, "AMB-VIEW"))
		peers.Navigate(t, tab, "about:blank")
		through = append(through, openBox(t, tab, originB, originA, "AMB-VIEW"))
	}
	dm, tm := median(direct), median(through)
	t.Logf("opening the box to its first video frame, median of %d: directly at A %v, through B's hand-over %v (the first, with nothing cached at A, %v); added %v",
		len(direct), dm.Round(time.Millisecond), tm.Round(time.Millisecond), handedOver.Round(time.Millisecond), (tm - dm).Round(time.Millisecond))
	t.Logf("direct: %v; through B: %v", direct, through)
	// The hand-over is a page, two audited requests and a page more: on a loaded
	// machine a second or so, not the several seconds of a stream set up twice.
	if added := tm - dm; added > 3*time.Second {
		t.Errorf("the hand-over adds %v to the first frame, want under 3 s", added)
	}
}

// openBox opens device's patient view at the origin from and waits until it plays at
// the origin at (after a hand-over, when they differ); it returns the time from
// opening to the first video frame the page showed.
func openBox(t *testing.T, ctx context.Context, from, at, device string) time.Duration {
	t.Helper()
	// As a doctor opens it from the address bar or a bookmark: a navigation by the
	// browser, which sends the site's SameSite=Strict cookie. Not chromedp.Navigate,
	// which waits for the first page's load while a hand-over is already leaving it.
	view := from + "/ed/box/" + device
	opened := time.Now()
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := cdp.Call(ctx, tg, page.Navigate, page.NavigateParams{URL: view})
		if err == nil && res.ErrorText != "" {
			err = fmt.Errorf("open %s: %s", view, res.ErrorText)
		}
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	var first float64
	var where string
	defer func() {
		if t.Failed() {
			t.Logf("the browser was last at %s", where)
		}
	}()
	wait.For(t, 30*time.Second, "the view of "+device+" playing at "+at+", opened at "+from, func() bool {
		res, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
			Origin, Path, State string
			First               float64
			Frames              int
		}](`Promise.resolve(window.edView && window.edView.videoStats()).then(s => ({origin: location.origin, path: location.pathname,
			state: window.edView ? window.edView.state : "", first: (window.edView && window.edView.firstFrameAt) || 0, frames: s ? s.framesDecoded : 0}))`, chromedp.EvalAwaitPromise))
		if err != nil {
			where = err.Error()
			return false
		}
		where = fmt.Sprintf("%s%s (%s, %d frames)", res.Origin, res.Path, res.State, res.Frames)
		first = res.First
		return res.Origin == at && res.Path == "/ed/box/"+device && res.First > 0 && res.Frames >= 10
	})
	d := time.UnixMilli(int64(first)).Sub(opened)
	t.Logf("%s opened at %s: first frame after %v at %s", device, from, d.Round(time.Millisecond), where)
	return d
}

// tokenFromBPlaysAtA: a viewer token issued at B is sent by B to A's WHEP URL (307),
// and a browser without any session plays the box there with it.
func tokenFromBPlaysAtA(t *testing.T, b *sharedHub, originB, originA, device string) {
	t.Helper()
	status, out, stderr := b.cmd(t, "", "viewer-token", "--device", device, "--for", "test player")
	if status != 0 {
		t.Fatalf("viewer-token at B: %d %s", status, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	client := &http.Client{Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // B's own certificate; the test checks the answer, not the name
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, originB+"/whep/"+device, strings.NewReader("v=0\r\n"))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := originA + "/whep/" + device
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("B's answer to a WHEP offer for a box at A: %s, Location %q, %s; want 307 to %s", resp.Status, resp.Header.Get("Location"), body, want)
	}
	wantAuditLine(t, filepath.Join(b.data, "audit.log"), `"stream.view.redirected"`, device, want)

	player := peers.Browser(t, peers.BrowserOptions{Flags: map[string]any{"ignore-certificate-errors": true}})
	peers.Navigate(t, player, originA+"/signin/link") // a page of A's origin, signed in nowhere
	if _, err := chromedp.Run(player, chromedp.Evaluate[string](whepViewerJS)); err != nil {
		t.Fatal(err)
	}
	if res := peers.Eval[string](t, player, fmt.Sprintf("watch(%q, %q, \"\")", want, token)); res != "201" {
		t.Fatalf("the token issued at B, at A's WHEP URL: %s", res)
	}
	wait.For(t, 30*time.Second, "the token's player decoding the box's video at A", func() bool {
		n, err := chromedp.Run(player, chromedp.Evaluate[int]("framesDecoded()", chromedp.EvalAwaitPromise))
		return err == nil && n >= 30
	})
	wait.For(t, 30*time.Second, "vitals at the token's player", func() bool {
		n, err := chromedp.Run(player, chromedp.Evaluate[int]("window.got.vitals.length + window.got.wave.length"))
		return err == nil && n > 0
	})
}

// linkStaysAtItsHub: a sign-in link whose ?next= would leave the hub signs the
// browser in and stays on the hub (its ED screen), so that a link can never send a
// freshly signed-in doctor to a page elsewhere.
func linkStaysAtItsHub(t *testing.T, h *sharedHub, origin string) {
	t.Helper()
	tab := peers.Browser(t, peers.BrowserOptions{Flags: map[string]any{"ignore-certificate-errors": true}})
	for _, next := range []string{"//example.com/ed/", "https://example.com/", "/\\example.com"} {
		peers.Navigate(t, tab, origin+"/signin/link?next="+url.QueryEscape(next)+"#"+linkToken(t, h, "dr.li"))
		var at string
		wait.For(t, 15*time.Second, "the link with next="+next+" signing in at "+origin, func() bool {
			res, err := chromedp.Run(tab, chromedp.Evaluate[string](`location.origin + location.pathname`))
			at = res
			return err == nil && res == origin+"/ed/"
		})
		if who := peers.Eval[string](t, tab, `fetch("/api/v1/whoami").then(r => r.json()).then(w => w.user)`); who != "dr.li" {
			t.Fatalf("signed in as %q by the link with next=%s at %s", who, next, at)
		}
	}
}

// hubWithAnotherViewerKey: a hub given the others' authority but not their
// viewer-token key is refused, and so is one with a key of its own, each told which
// file to copy.
func hubWithAnotherViewerKey(t *testing.T, dir, dsn string, from *sharedHub) {
	t.Helper()
	c := newSharedHub(t, dir, "hub-c", dsn, "")
	if err := os.MkdirAll(filepath.Join(c.data, "ca"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ca/ca.key", "ca/ca.crt"} {
		data, err := os.ReadFile(filepath.Join(from.data, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.data, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, stderr := c.cmd(t, "", "devices"); code == 0 || !strings.Contains(stderr, "viewer-token.key") {
		t.Fatalf("a hub without the others' viewer-token key: exit %d, %s; want a refusal naming viewer-token.key", code, stderr)
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(c.data, "viewer-token.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := c.cmd(t, "", "devices"); code == 0 || !strings.Contains(stderr, "viewer-token.key") {
		t.Fatalf("a hub with a viewer-token key of its own: exit %d, %s; want a refusal naming viewer-token.key", code, stderr)
	}
}

// linkToken makes a one-time sign-in link for user through hub h's command and
// returns its token.
func linkToken(t *testing.T, h *sharedHub, user string) string {
	t.Helper()
	code, out, stderr := h.cmd(t, "", "user", "link", "--user", user)
	if code != 0 {
		t.Fatalf("user link at %s: %d %s", h.name, code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	_, token, ok := strings.Cut(lines[len(lines)-1], "#")
	if !ok {
		t.Fatalf("user link at %s printed no link: %s", h.name, out)
	}
	return token
}

// median of ds, which it sorts.
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}
