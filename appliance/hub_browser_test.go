package appliance

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"lifeline/internal/peers"
	"lifeline/internal/signin"
	"lifeline/internal/wait"
)

// hospitalBrowser starts headless Chromium trusting the hub's browser certificate by
// its public key, as a hospital's managed browsers trust the hospital's authority.
func hospitalBrowser(t *testing.T, leaf *x509.Certificate) context.Context {
	t.Helper()
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return peers.Browser(t, peers.BrowserOptions{Flags: map[string]any{
		"ignore-certificate-errors-spki-list": base64.StdEncoding.EncodeToString(spki[:]),
	}})
}

// fetchJS runs fetch in the page and returns "status body".
func fetchJS(t *testing.T, tab context.Context, method, path, body string, headers map[string]string) string {
	t.Helper()
	h := `{"Content-Type": "application/json"`
	for k, v := range headers {
		h += `, "` + k + `": "` + v + `"`
	}
	h += "}"
	js := `fetch("` + path + `", {method: "` + method + `", headers: ` + h
	if body != "" {
		js += `, body: ` + "`" + body + "`"
	}
	js += `}).then((r) => r.text().then((b) => r.status + " " + b))`
	out, err := chromedp.Run(tab, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %s %s in Chromium: %v", method, path, err)
	}
	return out
}

// TestChromiumSignsInThroughTheHub signs a real browser in to a running hub over HTTPS
// with the hospital's certificate: refused without a session and with a wrong
// password, signed in with the right one into a cookie its scripts cannot read, its
// sign-out refused without the CSRF token; signed out it gets no page data and no
// media, a disabled account is refused, and the demo's one-time link signs it in.
func TestChromiumSignsInThroughTheHub(t *testing.T) {
	pki := newHospitalPKI(t)
	files := t.TempDir()
	certFile, keyFile := filepath.Join(files, "ed.crt"), filepath.Join(files, "ed.key")
	leaf := pki.issue(t, 200, certFile, keyFile)
	hub, cfg, dir := startHub(t, func(c *HubConfig) { c.Server.CertFile, c.Server.KeyFile = certFile, keyFile })
	admin := HubAdmin{DataDir: filepath.Join(dir, "hub"), Log: quietLog()}
	hash, err := signin.HashPassword("correct horse battery", signin.PasswordParams{Time: 1, Memory: 1024, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.AddUser(signin.NewUser{ID: "dr.li", Name: "李医生", Role: signin.RoleDoctor, Language: signin.LanguageChinese, PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	base := "https://127.0.0.1:" + port(cfg.Viewer.Listen)
	tab := hospitalBrowser(t, leaf)
	if err := chromedp.Do(tab, chromedp.Navigate(base+signin.WhoamiPath)); err != nil {
		t.Fatalf("open the viewer: %v", err)
	}

	if got := fetchJS(t, tab, "GET", signin.WhoamiPath, "", nil); !strings.HasPrefix(got, "401 ") {
		t.Fatalf("whoami before sign-in: %s", got)
	}
	if got := fetchJS(t, tab, "POST", signin.SignInPath, `{"user":"dr.li","password":"wrong password"}`, nil); !strings.HasPrefix(got, "401 ") {
		t.Fatalf("wrong password: %s", got)
	}
	got := fetchJS(t, tab, "POST", signin.SignInPath, `{"user":"dr.li","password":"correct horse battery"}`, nil)
	if !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"name":"李医生"`) {
		t.Fatalf("sign-in: %s", got)
	}
	csrf := got[strings.Index(got, `"csrf":"`)+8:]
	csrf = csrf[:strings.Index(csrf, `"`)]

	// The session cookie as Chromium keeps it.
	cookies, err := chromedp.Run(tab, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
		return res.Cookies, err
	})
	if err != nil || len(cookies) != 1 {
		t.Fatalf("cookies: %v %v", cookies, err)
	}
	if c := cookies[0]; c.Name != signin.CookieName || !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteStrict || c.Path != "/" {
		t.Fatalf("session cookie: %+v", c)
	}
	if doc, _ := chromedp.Run(tab, chromedp.Evaluate[string]("document.cookie")); doc != "" {
		t.Fatalf("the page's scripts can read cookies: %q", doc)
	}
	if got := fetchJS(t, tab, "GET", signin.WhoamiPath, "", nil); !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"user":"dr.li"`) {
		t.Fatalf("whoami after sign-in: %s", got)
	}
	if got := fetchJS(t, tab, "POST", signin.SignOutPath, "", nil); !strings.HasPrefix(got, "403 ") {
		t.Fatalf("sign-out without the CSRF token: %s", got)
	}
	if got := fetchJS(t, tab, "POST", signin.SignOutPath, "", map[string]string{signin.CSRFHeader: csrf}); !strings.HasPrefix(got, "204 ") {
		t.Fatalf("sign-out: %s", got)
	}
	if got := fetchJS(t, tab, "GET", signin.WhoamiPath, "", nil); !strings.HasPrefix(got, "401 ") {
		t.Fatalf("whoami after sign-out: %s", got)
	}
	// Signed out, the browser gets no page data and no media: not the board's list, not
	// a box's history or conversation, not a WHEP answer.
	for _, req := range []struct{ method, path, body string }{
		{"GET", edPrefix + "/api/boxes", ""},
		{"GET", edPrefix + "/api/box/AMB-1/crew", ""},
		{"GET", hubHistoryPath + "AMB-1/vitals", ""},
		{"POST", hubWHEPPath + "/AMB-1", "v=0"},
	} {
		if got := fetchJS(t, tab, req.method, req.path, req.body, nil); !strings.HasPrefix(got, "401 ") {
			t.Fatalf("%s %s signed out: %s", req.method, req.path, got)
		}
	}
	// A disabled account cannot sign in, even with its right password.
	if err := admin.SetDisabled("dr.li", true); err != nil {
		t.Fatal(err)
	}
	if got := fetchJS(t, tab, "POST", signin.SignInPath, `{"user":"dr.li","password":"correct horse battery"}`, nil); !strings.HasPrefix(got, "403 ") || !strings.Contains(got, "disabled") {
		t.Fatalf("a disabled user signing in: %s", got)
	}

	// A one-time link, as `lifeline demo` prints it, signs the browser in.
	linkURL, err := hub.DemoSignInLink(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(linkURL, "https://127.0.0.1:"+port(cfg.Viewer.Listen)+signin.LinkPagePath+"#") {
		t.Fatalf("demo link %s is not on the viewer", linkURL)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(linkURL)); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the link page to sign in and land on the ED screen", func() bool {
		loc, err := chromedp.Run(tab, chromedp.Location())
		return err == nil && loc == base+edPrefix+"/"
	})
	if got := fetchJS(t, tab, "GET", signin.WhoamiPath, "", nil); !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"user":"`+DemoDoctor+`"`) {
		t.Fatalf("whoami after the link: %s", got)
	}
}
