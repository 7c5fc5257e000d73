package edscreen

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"lifeline/internal/weblang/weblangtest"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewRefusesConfigsThatCannotWork(t *testing.T) {
	boxes := func(context.Context) ([]BoxSummary, error) { return nil, nil }
	for name, cfg := range map[string]Config{
		"no boxes":          {},
		"prefix with slash": {Boxes: boxes, Prefix: "/ed/"},
		"relative prefix":   {Boxes: boxes, Prefix: "ed"},
		"whep without id":   {Boxes: boxes, WHEPPattern: "/whep"},
		"history twice":     {Boxes: boxes, HistoryPattern: "/{device}/{device}"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := New(Config{Boxes: boxes}); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}

// serve starts the screen on a test server with the given boxes and wrapper.
func serve(t *testing.T, list func() ([]BoxSummary, error), wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	s, err := New(Config{Boxes: func(context.Context) ([]BoxSummary, error) { return list() }, Wrap: wrap, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestPagesCarryTheSecurityHeaders(t *testing.T) {
	srv := serve(t, func() ([]BoxSummary, error) { return nil, nil }, nil)
	for _, path := range []string{"/ed/", "/ed/box/amb-07", "/ed/static/js/view.js", "/ed/static/css/ed.css", "/ed/api/boxes", "/ed/nothing"} {
		res, _ := get(t, srv.URL+path)
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "media-src 'self' blob:", "connect-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP allows something unsafe: %q", path, csp)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, res.Header)
		}
	}
	res, body := get(t, srv.URL+"/ed/static/js/view.js")
	if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || !strings.HasPrefix(ct, "text/javascript") || !strings.Contains(body, "export") && !strings.Contains(body, "import") {
		t.Errorf("view.js: %d %s", res.StatusCode, ct)
	}
	for path, want := range map[string]int{"/ed/box/amb%2007": 400, "/ed/static/": 404, "/ed/static/board.html": 404, "/ed/nothing": 404} {
		if res, _ := get(t, srv.URL+path); res.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, res.StatusCode, want)
		}
	}
}

// TestPagesLoadNothingFromOutside: every script and style the pages name is in the
// binary, by a relative path, and no page or module names another host.
func TestPagesLoadNothingFromOutside(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(webFS, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(webFS, path)
		if m := external.FindString(string(b)); m != "" {
			t.Errorf("%s names an outside address %q", path, m)
		}
		if strings.Contains(string(b), "innerHTML") || strings.Contains(string(b), "insertAdjacentHTML") || strings.Contains(string(b), "document.write") {
			t.Errorf("%s builds markup from strings: crew and box text must go in as text only", path)
		}
		if strings.Contains(string(b), "<script>") || strings.Contains(string(b), "style=\"") || strings.Contains(string(b), " on") && strings.HasSuffix(path, ".html") && regexp.MustCompile(` on[a-z]+=`).Match(b) {
			t.Errorf("%s has inline script or style, which the CSP refuses", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, func() ([]BoxSummary, error) { return nil, nil }, nil)
	ref := regexp.MustCompile(`(?:src|href)="([^"]+)"|from "(\./[^"]+)"`)
	for _, page := range []string{"/ed/", "/ed/box/amb-07"} {
		_, body := get(t, srv.URL+page)
		for _, m := range ref.FindAllStringSubmatch(body, -1) {
			u := m[1]
			if u == "../" {
				continue
			}
			base := srv.URL + page
			if res, _ := get(t, resolve(base, u)); res.StatusCode != 200 {
				t.Errorf("%s refers to %s, which answers %d", page, u, res.StatusCode)
			}
		}
	}
}

func resolve(base, rel string) string {
	b, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	r, err := url.Parse(rel)
	if err != nil {
		panic(err)
	}
	return b.ResolveReference(r).String()
}

func TestBoardJSONPutsPreAlertsFirstAndKeepsUnknownsUnknown(t *testing.T) {
	eta := time.Now().Add(8 * time.Minute).UTC().Truncate(time.Second)
	srv := serve(t, func() ([]BoxSummary, error) {
		return []BoxSummary{
			{Device: "amb-01", Live: true, ETA: eta},
			{Device: "amb-02"},
			{Device: "amb-03", Patient: &PatientCard{Suspected: []string{" Stroke "}, Triage: 9}},
		}, nil
	}, nil)
	res, body := get(t, srv.URL+"/ed/api/boxes")
	if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("board: %d %v", res.StatusCode, res.Header)
	}
	var b Board
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, x := range b.Boxes {
		order = append(order, x.Device)
	}
	if !slices.Equal(order, []string{"amb-03", "amb-01", "amb-02"}) {
		t.Errorf("board order %v: want the stroke pre-alert first, then by ETA", order)
	}
	if !b.Boxes[0].Alert || b.Boxes[0].Patient.Triage != 0 || b.Boxes[0].Patient.Suspected[0] != ConditionStroke {
		t.Errorf("stroke box %+v %+v: want the alert, the condition normalised and an undefined triage level dropped", b.Boxes[0], b.Boxes[0].Patient)
	}
	if strings.Contains(body, `"eta":"0001`) || strings.Contains(body, `"last_contact"`) && strings.Contains(body, "0001-01-01") {
		t.Errorf("unknown times sent as zero times: %s", body)
	}
	if time.Since(b.ServerTime) > time.Minute {
		t.Errorf("server time %v", b.ServerTime)
	}
}

func TestBoxJSONGivesTheStreamURLs(t *testing.T) {
	srv := serve(t, func() ([]BoxSummary, error) { return []BoxSummary{{Device: "amb-07", Live: true}}, nil }, nil)
	res, body := get(t, srv.URL+"/ed/api/box/amb-07")
	var v BoxView
	if err := json.Unmarshal([]byte(body), &v); err != nil || res.StatusCode != 200 {
		t.Fatalf("box: %d %s %v", res.StatusCode, body, err)
	}
	if v.WHEP != "/whep/amb-07" || v.History != "/api/v1/devices/amb-07/vitals" || v.Box.Device != "amb-07" {
		t.Errorf("box view %+v", v)
	}
	if v.CSRFToken != "" || strings.Contains(body, "csrf") {
		t.Errorf("a CSRF token without a CSRFToken function: %s", body)
	}
	if res, body := get(t, srv.URL+"/ed/api/box/amb-99"); res.StatusCode != 404 || !strings.Contains(body, "amb-99") {
		t.Errorf("unknown box: %d %q", res.StatusCode, body)
	}
}

func TestFailuresAndBadBoxesAreNotShownAsData(t *testing.T) {
	var list []BoxSummary
	var err error
	srv := serve(t, func() ([]BoxSummary, error) { return list, err }, nil)
	err = errors.New("registry down")
	if res, body := get(t, srv.URL+"/ed/api/boxes"); res.StatusCode != 503 || strings.Contains(body, "registry") {
		t.Errorf("failing Boxes: %d %q: want 503 without the internal error", res.StatusCode, body)
	}
	list, err = []BoxSummary{{Device: "<script>"}}, nil
	if res, _ := get(t, srv.URL+"/ed/api/boxes"); res.StatusCode != 503 {
		t.Errorf("a box with an impossible device ID: %d, want 503", res.StatusCode)
	}
}

// TestWrapGuardsEveryPath: the hub's sign-in wrapper sees every request, so a browser
// that is not signed in gets neither pages nor data.
func TestWrapGuardsEveryPath(t *testing.T) {
	deny := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "sign in first", http.StatusUnauthorized)
		})
	}
	srv := serve(t, func() ([]BoxSummary, error) { return []BoxSummary{{Device: "amb-07"}}, nil }, deny)
	for _, path := range []string{"/ed/", "/ed/box/amb-07", "/ed/static/js/board.js", "/ed/api/boxes", "/ed/api/box/amb-07"} {
		res, body := get(t, srv.URL+path)
		if res.StatusCode != 401 || strings.Contains(body, "amb-07") {
			t.Errorf("%s without sign-in: %d %q", path, res.StatusCode, body)
		}
		if res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: the refusal lacks the security headers", path)
		}
	}
}

// TestEveryStringInBothLanguages: the dictionary has the same keys in zh-CN and
// English, and every key the modules ask for by a literal exists.
func TestEveryStringInBothLanguages(t *testing.T) {
	s, err := New(Config{Boxes: func(context.Context) ([]BoxSummary, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	zh := weblangtest.Check(t, s.assets, 100, 50)
	for _, prefix := range []string{"mission.", "link.", "cond.", "alarm.", "dev."} {
		n := 0
		for k := range zh {
			if strings.HasPrefix(k, prefix) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no %s… strings", prefix)
		}
	}
	for _, c := range []string{MissionDispatched, MissionOnScene, MissionTransporting, MissionArrived, MissionCancelled, MissionOtherHospital} {
		if !zh["mission."+c] {
			t.Errorf("mission state %q has no label", c)
		}
	}
	for _, c := range []string{ConditionSTEMI, ConditionStroke, ConditionMajorTrauma, ConditionSepsis, ConditionCardiacArrest} {
		if !zh["cond."+c] {
			t.Errorf("condition %q has no label", c)
		}
	}
	for _, q := range []string{LinkGood, LinkFair, LinkPoor, LinkLost} {
		if !zh["link."+q] {
			t.Errorf("link quality %q has no label", q)
		}
	}
}

func TestBoxJSONCarriesTheSessionsCSRFToken(t *testing.T) {
	s, err := New(Config{
		Boxes:      func(context.Context) ([]BoxSummary, error) { return []BoxSummary{{Device: "amb-07"}}, nil },
		CSRFToken:  func(r *http.Request) string { return "tok-" + r.Header.Get("X-Session") },
		CSRFHeader: "X-Lifeline-CSRF",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ed/api/box/amb-07", nil)
	req.Header.Set("X-Session", "s1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v BoxView
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.CSRFHeader != "X-Lifeline-CSRF" || v.CSRFToken != "tok-s1" {
		t.Errorf("box view CSRF %q: %q, want the session's token in the configured header", v.CSRFHeader, v.CSRFToken)
	}
}
