package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// whepViewerJS is a minimal standard WHEP player, evaluated in Chromium on the hub's
// viewer origin: it offers to receive video and audio and opens the vitals channels,
// authenticated by a viewer token, and counts what arrives.
const whepViewerJS = `
window.watch = async (url, token, csrf) => {
  const pc = new RTCPeerConnection();
  window.viewer = pc;
  window.got = {vitals: [], wave: []};
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  const reliable = pc.createDataChannel("vitals");
  const wave = pc.createDataChannel("vitals-wave", {ordered: false, maxRetransmits: 0});
  pc.createDataChannel("control");
  // The vitals are JSON text messages (stream/VITALS.md): a binary one fails here.
  reliable.onmessage = e => window.got.vitals.push(JSON.parse(e.data));
  wave.onmessage = e => window.got.wave.push(JSON.parse(e.data));
  pc.ontrack = e => {
    if (e.track.kind !== "video") return;
    const v = document.createElement("video");
    v.muted = true; v.autoplay = true; v.srcObject = new MediaStream([e.track]);
    document.body.appendChild(v);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => pc.iceGatheringState === "complete" ? r() :
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r()));
  const headers = {"Content-Type": "application/sdp"};
  if (token) headers.Authorization = "Bearer " + token;
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const res = await fetch(url, {method: "POST", headers, body: pc.localDescription.sdp});
  const body = await res.text();
  if (res.status !== 201) return res.status + " " + body;
  await pc.setRemoteDescription({type: "answer", sdp: body});
  return "201";
};
window.framesDecoded = async () => {
  let n = 0;
  for (const r of (await window.viewer.getStats()).values())
    if (r.type === "inbound-rtp" && r.kind === "video") n = r.framesDecoded || 0;
  return n;
};
"ok"`

// TestLiveStreamFromBoxToChromiumViewer runs the product's second data path through the
// binary: a box with the embedded clip as its camera and a simulated HL7 monitor on a
// serial cable publishes over WHIP to the hub, and Chromium, as a standard WHEP player
// holding a viewer token, decodes the video and receives the vitals the monitor sent.
func TestLiveStreamFromBoxToChromiumViewer(t *testing.T) {
	cable := peers.PlugCable(t)
	viewerAddr, streamAddr := freePort(t), freePort(t)
	s := newTestSystem(t, "AMB-LIVE",
		fmt.Sprintf("[viewer]\nlisten = %q\n[stream]\nlisten = %q\n", viewerAddr, streamAddr),
		fmt.Sprintf("[[camera]]\nurl = \"clip:\"\n[[monitor]]\nport = %q\nprotocol = \"hl7\"\n", cable.BoxEnd))
	start(t, "sim", "monitor", "--protocol", "hl7", "--port", cable.DeviceEnd)
	s.startHub(t)
	wait.For(t, 15*time.Second, "hub serving", func() bool { return s.hubReports(t, "hub-server", "ready") })
	s.enrolBox(t)
	s.startBox(t)

	wait.For(t, 60*time.Second, "the box's live stream connected to the hub", func() bool {
		st, _ := s.boxStatus(t).service("live-stream")
		return st == "ready"
	})
	code, out, stderr := lifeline(t, "hub", "viewer-token", "--device", "AMB-LIVE", "--for", "test player", "--config", s.hubConf, "--data", s.hubData)
	if code != 0 {
		t.Fatalf("hub viewer-token: status %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	whepURL := "https://" + viewerAddr + "/whep/AMB-LIVE"
	if !strings.Contains(out, whepURL) {
		t.Fatalf("viewer-token printed no WHEP URL %s:\n%s", whepURL, out)
	}

	// The viewer side serves the hub's own certificate here (no cert_file): the test's
	// browser is told to accept it, as no doctor's browser ever should be.
	tab := peers.Browser(t, peers.BrowserOptions{Flags: map[string]any{"ignore-certificate-errors": true}})
	if err := chromedp.Do(tab, chromedp.Navigate("https://"+viewerAddr+"/signin/link")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab, chromedp.Evaluate[string](whepViewerJS)); err != nil {
		t.Fatal(err)
	}
	watch := func(tok string) string {
		t.Helper()
		res, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf("watch(%q, %q, \"\")", whepURL, tok), chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := watch(""); !strings.HasPrefix(res, "401") {
		t.Fatalf("WHEP without sign-in or token answered %s, want 401", res)
	}
	if res := watch(token[:len(token)-2] + "xx"); !strings.HasPrefix(res, "403") {
		t.Fatalf("WHEP with a forged token answered %s, want 403", res)
	}
	if res := watch(token); res != "201" {
		t.Fatalf("WHEP with the viewer token: %s", res)
	}

	wait.For(t, 30*time.Second, "Chromium decoding the box's video", func() bool {
		n, err := chromedp.Run(tab, chromedp.Evaluate[int]("framesDecoded()", chromedp.EvalAwaitPromise))
		return err == nil && n >= 60
	})
	type vital struct {
		Type, MDC, Unit, Device string
		Seq                     uint64
		Value                   *float64
		Rate                    float64
		Samples                 []*float64
	}
	var got struct{ Vitals, Wave []vital }
	wait.For(t, 30*time.Second, "SpO2 and an ECG wave at the viewer", func() bool {
		raw, err := chromedp.Run(tab, chromedp.Evaluate[[]byte]("window.got"))
		if err != nil || json.Unmarshal(raw, &got) != nil {
			return false
		}
		var spo2, ecg bool
		for _, v := range got.Vitals {
			spo2 = spo2 || (v.MDC == "MDC_PULS_OXIM_SAT_O2" && v.Unit == "%" && v.Value != nil && *v.Value > 50)
		}
		for _, w := range got.Wave {
			ecg = ecg || (strings.HasPrefix(w.MDC, "MDC_ECG_") && w.Rate > 0 && len(w.Samples) > 0)
		}
		return spo2 && ecg
	})
	for i, v := range got.Vitals {
		if v.Device != "AMB-LIVE" {
			t.Errorf("vitals message %d names device %q, want AMB-LIVE", i, v.Device)
		}
		if i > 0 && v.Seq <= got.Vitals[i-1].Seq {
			t.Errorf("reliable vitals out of order at the viewer: seq %d after %d", v.Seq, got.Vitals[i-1].Seq)
		}
	}

	// Revoking the box ends its live session at once.
	if code, _, stderr := lifeline(t, "hub", "revoke", "--device", "AMB-LIVE", "--config", s.hubConf, "--data", s.hubData); code != 0 {
		t.Fatalf("hub revoke: %s", stderr)
	}
	wait.For(t, 15*time.Second, "the viewer's connection ended after the revocation", func() bool {
		st, err := chromedp.Run(tab, chromedp.Evaluate[string]("window.viewer.connectionState"))
		return err == nil && (st == "failed" || st == "closed" || st == "disconnected")
	})
	wait.For(t, 5*time.Second, "the token, the view and the revocation in the audit log", func() bool {
		audit, _ := os.ReadFile(filepath.Join(s.hubData, "audit.log"))
		for _, event := range []string{"stream.viewer_token_issued", "stream.view.requested", "device.revoked"} {
			if !strings.Contains(string(audit), `"`+event+`"`) {
				return false
			}
		}
		return true
	})
}

// watchSignedIn opens a one-time sign-in link in Chromium, as a doctor would, and then
// watches device over WHEP with that browser session (its cookie and CSRF token): the
// video must decode and the vitals arrive. It returns the browser, on the patient view.
func watchSignedIn(t *testing.T, link, device string) context.Context {
	t.Helper()
	tab := signIn(t, link, peers.BrowserOptions{})
	csrf := peers.Eval[string](t, tab, `fetch("/api/v1/whoami").then(r => r.json()).then(w => w.csrf)`)
	if _, err := chromedp.Run(tab, chromedp.Evaluate[string](whepViewerJS)); err != nil {
		t.Fatal(err)
	}
	res, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf("watch(%q, \"\", %q)", "/whep/"+device, csrf), chromedp.EvalAwaitPromise))
	if err != nil || res != "201" {
		t.Fatalf("WHEP as the signed-in doctor: %v %s", err, res)
	}
	wait.For(t, 30*time.Second, "the signed-in browser decoding the box's video", func() bool {
		n, err := chromedp.Run(tab, chromedp.Evaluate[int]("framesDecoded()", chromedp.EvalAwaitPromise))
		return err == nil && n >= 30
	})
	wait.For(t, 30*time.Second, "vitals at the signed-in browser", func() bool {
		n, err := chromedp.Run(tab, chromedp.Evaluate[int]("window.got.vitals.length + window.got.wave.length"))
		return err == nil && n > 0
	})

	// The ED screen: the box is on the board, live, and its view plays the video and
	// shows the monitor's numbers.
	if err := chromedp.Do(tab, chromedp.Navigate(origin(link)+"/ed/")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, device+" on the ED board", func() bool {
		text, err := chromedp.Run(tab, chromedp.Evaluate[string]("document.body.innerText"))
		return err == nil && strings.Contains(text, device)
	})
	if err := chromedp.Do(tab, chromedp.Navigate(origin(link)+"/ed/box/"+device)); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "the patient view playing video with the monitor's heart rate", func() bool {
		frames, err := chromedp.Run(tab, chromedp.Evaluate[int](
			`Promise.resolve(window.edView && window.edView.videoStats()).then(s => s ? s.framesDecoded : 0)`, chromedp.EvalAwaitPromise))
		if err != nil || frames < 10 {
			return false
		}
		numerics, err := chromedp.Run(tab, chromedp.Evaluate[map[string]string]("window.edView.numerics"))
		return err == nil && numerics["hr"] != "" && numerics["hr"] != "—"
	})
	return tab
}

// origin is the scheme and host of a URL.
func origin(u string) string {
	scheme, rest, _ := strings.Cut(u, "://")
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host
}
