package appliance

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"lifeline/internal/service"
	"lifeline/internal/wait"
	"lifeline/internal/weblang/weblangtest"
	"lifeline/stream/vitals"
)

// TestStatusPageEveryStringInBothLanguages: the box's dictionary has the same keys in
// zh-CN and English, every key the page asks for by a literal exists, and every value
// the box sends that the page translates (mission states, service states, checks,
// suspected conditions, ECG states) has its words.
func TestStatusPageEveryStringInBothLanguages(t *testing.T) {
	zh := weblangtest.Check(t, statusFiles, 100, 50)

	var want []string
	for _, s := range missionStates {
		want = append(want, "mission."+strings.ReplaceAll(string(s), " ", "_"))
	}
	for _, s := range []service.State{service.Starting, service.Ready, service.Degraded, service.Failed, service.Stopped} {
		want = append(want, "state."+string(s), "overall."+string(s))
	}
	for _, c := range []string{"clock", "disk", "serial", "hub", "certificate"} {
		want = append(want, "check."+c)
	}
	for _, r := range []string{"ok", "warn", "fail"} {
		want = append(want, "result."+r)
	}
	for _, f := range []string{FixFixed, FixSearching, FixLost, FixSilent, FixNone} {
		want = append(want, "fix."+f)
	}
	for _, s := range vitals.Sexes {
		want = append(want, "sex."+s)
	}
	for _, c := range vitals.Suspicions {
		want = append(want, "cond."+c)
	}
	for _, s := range []string{vitals.ECGAcquiring, vitals.ECGQueued, vitals.ECGFailed} {
		want = append(want, "ecg."+s)
	}
	for _, k := range want {
		if !zh[k] {
			t.Errorf("the box sends a value the page cannot name: %q is missing", k)
		}
	}
}

// TestStatusPageChoicesAreTheBoxs: the card's buttons offer exactly the values the box
// takes, so that no button leads to a refusal and no value is out of the crew's reach.
func TestStatusPageChoicesAreTheBoxs(t *testing.T) {
	src, err := fs.ReadFile(statusWeb, "web/js/card.js")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{"ageBands": vitals.AgeBands, "sexes": vitals.Sexes, "conditions": vitals.Suspicions} {
		m := regexp.MustCompile(`const ` + name + ` = \[([^\]]*)\]`).FindStringSubmatch(string(src))
		if m == nil {
			t.Errorf("card.js has no %s", name)
			continue
		}
		var got []string
		for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
			got = append(got, q[1])
		}
		if !slices.Equal(got, want) {
			t.Errorf("card.js %s = %q, the box takes %q", name, got, want)
		}
	}
}

// TestStatusPageServesOnlyItsOwnFiles: the page and its assets come with a policy that
// runs no inline script or style, and nothing but the page's scripts and styles can be
// asked for under /static/.
func TestStatusPageServesOnlyItsOwnFiles(t *testing.T) {
	for _, c := range []struct {
		target, wantType string
		want             int
	}{
		{"/", "text/html; charset=utf-8", http.StatusOK},
		{"/static/js/main.js", "text/javascript; charset=utf-8", http.StatusOK},
		{"/static/css/status.css", "text/css; charset=utf-8", http.StatusOK},
		{"/static/status.html", "", http.StatusNotFound},
		{"/static/../web.go", "", http.StatusNotFound},
		{"/static//etc/passwd.js", "", http.StatusNotFound},
		{"/static/js", "", http.StatusNotFound},
		{"/static/js/missing.js", "", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = c.target // as the mux hands it over, unclean paths included
		if c.target == "/" {
			serveStatusPage(rec, req)
		} else {
			serveStatusAsset(rec, req)
		}
		if rec.Code != c.want || (c.wantType != "" && rec.Header().Get("Content-Type") != c.wantType) {
			t.Errorf("GET %s: %d %q, want %d %q", c.target, rec.Code, rec.Header().Get("Content-Type"), c.want, c.wantType)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "style-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: policy %q", c.target, csp)
		}
	}
	page, _ := fs.ReadFile(statusWeb, "web/status.html")
	if regexp.MustCompile(`<script>|<style|style="|\son[a-z]+="`).Match(page) {
		t.Error("status.html has inline script or style, which the policy blocks")
	}
	// The ambulance may have no internet: nothing of the page may come from elsewhere.
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(`)
	fs.WalkDir(statusWeb, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(statusWeb, path)
		for _, line := range strings.Split(string(b), "\n") {
			if code, _, _ := strings.Cut(line, "// "); external.MatchString(code) {
				t.Errorf("%s reaches outside the box: %s", path, strings.TrimSpace(line))
			}
		}
		return nil
	})
}

// pageBox is a real box serving the status page from a data directory, without
// enrolment, monitors or GNSS, and with a dispatch platform that does not answer: what
// a box fresh out of its case shows, with its mission buttons.
type pageBox struct {
	t    *testing.T
	cfg  EdgeConfig
	dir  string
	edge *Edge
	url  string
	stop func()
}

func startPageBox(t *testing.T) *pageBox {
	t.Helper()
	b := &pageBox{t: t, cfg: DefaultEdgeConfig(), dir: t.TempDir()}
	var err error
	for _, addr := range []*string{&b.cfg.HTTP.Listen, &b.cfg.DICOM.Listen} {
		if *addr, err = freeLoopbackPort(false); err != nil {
			t.Fatal(err)
		}
	}
	// A hub that refuses at once: the box shows itself degraded, not enrolled.
	hub, err := freeLoopbackPort(false)
	if err != nil {
		t.Fatal(err)
	}
	b.cfg.Hub.URL = "https://" + hub
	platform, err := freeLoopbackPort(false)
	if err != nil {
		t.Fatal(err)
	}
	b.cfg.Dispatch = DispatchSection{Server: platform, TerminalID: "13800138000", Edition: "2019",
		Destination: DestinationSection{Name: "省人民医院", Lat: 23.1291, Lon: 113.2644}}
	b.url = "http://" + b.cfg.HTTP.Listen + "/"
	b.start()
	return b
}

// start runs the box on its data directory until stop, and waits until it serves.
func (b *pageBox) start() {
	b.t.Helper()
	e, err := OpenEdge(b.cfg, b.dir, "test", quietLog())
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	stopped := false
	b.edge = e
	b.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-errc; err != nil {
			b.t.Errorf("box: %v", err)
		}
	}
	b.t.Cleanup(b.stop)
	wait.For(b.t, 20*time.Second, "the box's status page served", func() bool {
		res, err := http.Get(b.url + "healthz")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

// restart stops the box and starts it again on the same data directory.
func (b *pageBox) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}
