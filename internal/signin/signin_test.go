package signin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/internal/audit/audittest"
	"lifeline/internal/hubstate"
	"lifeline/internal/hubstate/boltstate"
	"lifeline/internal/throttle"
)

// cheap are argon2id parameters that keep tests fast; production hashes use
// DefaultPasswordParams, which TestDefaultHashVerifies covers.
var cheap = PasswordParams{Time: 1, Memory: 64, Threads: 1}

// clock is a settable time for sessions and throttles.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testGate struct {
	gate  *Gate
	state hubstate.Store
	audit *audittest.Recorder
	clock *clock
	srv   *httptest.Server
}

// startGate serves the gate and a doctor-only and an any-role endpoint over real TLS
// on loopback, with accounts dr.li (doctor) and obs.wang (observer).
func startGate(t *testing.T) *testGate {
	t.Helper()
	state, err := boltstate.Open(filepath.Join(t.TempDir(), "hub.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { state.Close() })
	tg := &testGate{state: state, audit: &audittest.Recorder{}, clock: &clock{now: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}}
	tg.gate = New(Config{Password: cheap, Now: tg.clock.Now, SessionsPerUser: 3}, state, tg.audit, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tg.addUser(t, "dr.li", RoleDoctor, "correct horse battery")
	tg.addUser(t, "obs.wang", RoleObserver, "observer password")
	mux := http.NewServeMux()
	tg.gate.Mount(mux)
	mux.Handle("POST /api/v1/ecg", tg.gate.Require(RoleDoctor)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := ViewerFrom(r.Context())
		io.WriteString(w, "12-lead requested by "+v.User)
	})))
	mux.Handle("GET /api/v1/board", tg.gate.Require()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"boxes":["AMB-0001"]}`)
	})))
	tg.srv = httptest.NewTLSServer(mux)
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *testGate) addUser(t *testing.T, id, role, pw string) {
	t.Helper()
	hash, err := HashPassword(pw, cheap)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.gate.AddUser(context.Background(), NewUser{ID: id, Name: "Dr " + id, Role: role, Language: LanguageChinese, PasswordHash: hash}, "test"); err != nil {
		t.Fatal(err)
	}
}

// browser is a client with its own cookie jar that sends the hub's Origin, as a page
// of the hub does.
type browser struct {
	t      *testing.T
	tg     *testGate
	client *http.Client
	csrf   string
	origin string
}

func (tg *testGate) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	c := tg.srv.Client()
	c.Jar = jar
	return &browser{t: t, tg: tg, client: c, origin: tg.srv.URL}
}

func (b *browser) do(method, path, body string, headers ...string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.tg.srv.URL+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func (b *browser) signIn(user, pw string) (int, string) {
	b.t.Helper()
	body, _ := json.Marshal(map[string]string{"user": user, "password": pw})
	status, out := b.do("POST", SignInPath, string(body))
	if status == http.StatusOK {
		var who Whoami
		json.Unmarshal([]byte(out), &who)
		b.csrf = who.CSRF
	}
	return status, out
}

func TestSignInSessionCSRFAndSignOut(t *testing.T) {
	tg := startGate(t)
	b := tg.browser(t)
	if status, _ := b.do("GET", "/api/v1/board", ""); status != http.StatusUnauthorized {
		t.Fatalf("board before sign-in: %d, want 401", status)
	}
	status, out := b.signIn("Dr.Li ", "correct horse battery")
	if status != http.StatusOK || !strings.Contains(out, `"role":"doctor"`) || b.csrf == "" {
		t.Fatalf("sign-in: %d %s", status, out)
	}
	// The cookie as the browser got it.
	resp, _ := http.NewRequest("GET", tg.srv.URL, nil)
	cookies := b.client.Jar.Cookies(resp.URL)
	if len(cookies) != 1 || cookies[0].Name != CookieName || len(cookies[0].Value) != 43 {
		t.Fatalf("cookies: %v", cookies)
	}
	if status, out := b.do("GET", "/api/v1/board", ""); status != 200 || !strings.Contains(out, "AMB-0001") {
		t.Fatalf("board after sign-in: %d %s", status, out)
	}
	if status, out := b.do("POST", "/api/v1/ecg", `{}`); status != http.StatusForbidden || !strings.Contains(out, CSRFHeader) {
		t.Fatalf("state change without a CSRF token: %d %s", status, out)
	}
	b.origin = "https://evil.example"
	if status, out := b.do("POST", "/api/v1/ecg", `{}`, CSRFHeader, b.csrf); status != http.StatusForbidden || !strings.Contains(out, "another site") {
		t.Fatalf("state change from another origin: %d %s", status, out)
	}
	b.origin = tg.srv.URL
	if status, out := b.do("POST", "/api/v1/ecg", `{}`, CSRFHeader, b.csrf); status != 200 || out != "12-lead requested by dr.li" {
		t.Fatalf("state change with token and origin: %d %s", status, out)
	}
	if status, out := b.do("PATCH", MePath, `{"language":"en"}`, CSRFHeader, b.csrf); status != 200 || !strings.Contains(out, `"language":"en"`) {
		t.Fatalf("language: %d %s", status, out)
	}
	if u, _ := tg.state.User(context.Background(), "dr.li"); u.Language != LanguageEnglish {
		t.Fatalf("stored language %q", u.Language)
	}
	if status, _ := b.do("POST", SignOutPath, "", CSRFHeader, b.csrf); status != http.StatusNoContent {
		t.Fatalf("sign-out: %d", status)
	}
	if status, _ := b.do("GET", WhoamiPath, ""); status != http.StatusUnauthorized {
		t.Fatalf("whoami after sign-out: %d", status)
	}
	for _, ev := range []string{"account.added", "signin", "access.refused", "account.language", "signout"} {
		if tg.audit.Count(ev) == 0 {
			t.Errorf("no %s audited; events: %v", ev, tg.audit.Events())
		}
	}
	if f := tg.audit.Last("signin"); f["user"] != "dr.li" || !strings.HasPrefix(f["remote"].(string), "127.0.0.1:") {
		t.Errorf("signin audit line: %v", f)
	}
}

func TestObserverMayWatchButNotAct(t *testing.T) {
	tg := startGate(t)
	b := tg.browser(t)
	if status, out := b.signIn("obs.wang", "observer password"); status != 200 {
		t.Fatalf("sign-in: %d %s", status, out)
	}
	if status, _ := b.do("GET", "/api/v1/board", ""); status != 200 {
		t.Fatalf("observer on the board: %d", status)
	}
	if status, _ := b.do("POST", "/api/v1/ecg", `{}`, CSRFHeader, b.csrf); status != http.StatusForbidden {
		t.Fatalf("observer asking for a 12-lead: %d, want 403", status)
	}
}

func TestSessionIdleTimeoutAndLifetime(t *testing.T) {
	tg := startGate(t)
	b := tg.browser(t)
	b.signIn("dr.li", "correct horse battery")
	// Used every 20 min, the session outlives the 30 min idle timeout…
	for range 5 {
		tg.clock.advance(20 * time.Minute)
		if status, _ := b.do("GET", WhoamiPath, ""); status != 200 {
			t.Fatalf("session used every 20 min: %d", status)
		}
	}
	// …but not 31 min of silence.
	tg.clock.advance(31 * time.Minute)
	if status, out := b.do("GET", WhoamiPath, ""); status != http.StatusUnauthorized || !strings.Contains(out, "timed out") {
		t.Fatalf("after 31 idle minutes: %d %s", status, out)
	}
	// Nor the 12 h lifetime, however busy.
	b.signIn("dr.li", "correct horse battery")
	for range 12*3 + 1 {
		tg.clock.advance(20 * time.Minute)
		b.do("GET", WhoamiPath, "")
	}
	if status, _ := b.do("GET", WhoamiPath, ""); status != http.StatusUnauthorized {
		t.Fatalf("after 12 h 20 min: %d, want 401", status)
	}
}

func TestThrottlePerAccountAndPerAddress(t *testing.T) {
	tg := startGate(t)
	b := tg.browser(t)
	for i := range accountFree {
		if status, out := b.signIn("dr.li", "wrong password!"); status != http.StatusUnauthorized || !strings.Contains(out, "wrong user name or password") {
			t.Fatalf("failure %d: %d %s", i+1, status, out)
		}
	}
	status, out := b.signIn("dr.li", "wrong password!")
	if status != http.StatusTooManyRequests || !strings.Contains(out, "try again in 1 s") {
		t.Fatalf("failure beyond the account's allowance: %d %s", status, out)
	}
	// Blocked: even the right password waits, and is not even checked.
	if status, out := b.signIn("dr.li", "correct horse battery"); status != http.StatusTooManyRequests || !strings.Contains(out, "for this account") {
		t.Fatalf("right password while blocked: %d %s", status, out)
	}
	tg.clock.advance(2 * time.Second)
	if status, _ := b.signIn("dr.li", "correct horse battery"); status != 200 {
		t.Fatalf("right password after the wait: %d", status)
	}
	// One address trying many names is blocked as an address.
	for i := range addressFree - accountFree - 1 {
		if status, _ := b.signIn("nobody"+string(rune('a'+i)), "whatever password"); status != http.StatusUnauthorized {
			t.Fatalf("unknown name %d: %d", i, status)
		}
	}
	if status, _ := b.signIn("nobody-else", "whatever password"); status != http.StatusTooManyRequests {
		t.Fatalf("failure beyond the address's allowance: %d", status)
	}
	status, out = b.signIn("obs.wang", "observer password")
	if status != http.StatusTooManyRequests || !strings.Contains(out, "from this address") {
		t.Fatalf("after %d failures from one address: %d %s", addressFree+1, status, out)
	}
	if n := tg.audit.Count("signin.failed"); n != addressFree+1 {
		t.Fatalf("%d failed sign-ins audited, want %d (refusals while blocked are not)", n, addressFree+1)
	}
	if f := tg.audit.Last("signin.failed"); f["blocked_for"] != "1s" {
		t.Fatalf("the failure that blocked the address: %v", f)
	}
}

func TestDisabledUserIsSignedOutAndRefused(t *testing.T) {
	tg := startGate(t)
	b := tg.browser(t)
	b.signIn("dr.li", "correct horse battery")
	if err := tg.gate.SetDisabled(context.Background(), "dr.li", true, "test"); err != nil {
		t.Fatal(err)
	}
	if status, _ := b.do("GET", "/api/v1/board", ""); status != http.StatusUnauthorized {
		t.Fatalf("board after the account was disabled: %d", status)
	}
	if status, out := b.signIn("dr.li", "correct horse battery"); status != http.StatusForbidden || !strings.Contains(out, "disabled") {
		t.Fatalf("disabled account signing in: %d %s", status, out)
	}
	if status, out := b.signIn("dr.li", "a wrong password"); status != http.StatusUnauthorized || strings.Contains(out, "disabled") {
		t.Fatalf("wrong password on a disabled account must not tell it is disabled: %d %s", status, out)
	}
	if err := tg.gate.SetDisabled(context.Background(), "dr.li", false, "test"); err != nil {
		t.Fatal(err)
	}
	if status, _ := b.signIn("dr.li", "correct horse battery"); status != 200 {
		t.Fatalf("enabled again: %d", status)
	}
}

func TestPasswordChangeEndsSessions(t *testing.T) {
	tg := startGate(t)
	b := tg.browser(t)
	b.signIn("dr.li", "correct horse battery")
	hash, _ := HashPassword("a new long password", cheap)
	if err := tg.gate.SetPassword(context.Background(), "dr.li", hash, "test"); err != nil {
		t.Fatal(err)
	}
	if status, _ := b.do("GET", WhoamiPath, ""); status != http.StatusUnauthorized {
		t.Fatalf("old session after a password change: %d", status)
	}
	if status, _ := b.signIn("dr.li", "correct horse battery"); status != http.StatusUnauthorized {
		t.Fatalf("old password: %d", status)
	}
	if status, _ := b.signIn("dr.li", "a new long password"); status != 200 {
		t.Fatalf("new password: %d", status)
	}
}

// TestSecurityActionsFailClosed checks that nothing happens that the audit trail
// cannot record: no session, no account, no link.
func TestSecurityActionsFailClosed(t *testing.T) {
	tg := startGate(t)
	b := tg.browser(t)
	tg.audit.FailWith(errors.New("disk full"))
	if status, out := b.signIn("dr.li", "correct horse battery"); status != http.StatusServiceUnavailable || !strings.Contains(out, "audit") {
		t.Fatalf("sign-in with a failing audit log: %d %s", status, out)
	}
	if status, _ := b.do("GET", WhoamiPath, ""); status != http.StatusUnauthorized {
		t.Fatal("a session exists although its sign-in was not audited")
	}
	hash, _ := HashPassword("some long password", cheap)
	err := tg.gate.AddUser(context.Background(), NewUser{ID: "dr.zhao", Name: "Dr Zhao", Role: RoleDoctor, Language: LanguageEnglish, PasswordHash: hash}, "test")
	if !errors.Is(err, ErrNotAudited) {
		t.Fatalf("add user with a failing audit log: %v", err)
	}
	if _, err := tg.state.User(context.Background(), "dr.zhao"); !errors.Is(err, hubstate.ErrNotFound) {
		t.Fatalf("an unaudited account exists: %v", err)
	}
	if err := tg.gate.SetDisabled(context.Background(), "dr.li", true, "test"); !errors.Is(err, ErrNotAudited) {
		t.Fatalf("disable with a failing audit log: %v", err)
	}
	if u, _ := tg.state.User(context.Background(), "dr.li"); u.Disabled {
		t.Fatal("an unaudited disable took effect")
	}
	if _, err := tg.gate.IssueLink(context.Background(), "dr.li", "test"); !errors.Is(err, ErrNotAudited) {
		t.Fatalf("link with a failing audit log: %v", err)
	}
}

func TestSignInLinkWorksOnce(t *testing.T) {
	tg := startGate(t)
	link, err := tg.gate.IssueLink(context.Background(), "dr.li", "test")
	if err != nil {
		t.Fatal(err)
	}
	b := tg.browser(t)
	body := `{"token":"` + link.Token + `"}`
	if status, out := b.do("POST", LinkRedeemPath, body); status != 200 || !strings.Contains(out, `"user":"dr.li"`) {
		t.Fatalf("link: %d %s", status, out)
	}
	if status, _ := b.do("GET", WhoamiPath, ""); status != 200 {
		t.Fatalf("whoami after the link: %d", status)
	}
	other := tg.browser(t)
	if status, out := other.do("POST", LinkRedeemPath, body); status != http.StatusUnauthorized || !strings.Contains(out, "already used") {
		t.Fatalf("link used again: %d %s", status, out)
	}
	late, _ := tg.gate.IssueLink(context.Background(), "dr.li", "test")
	tg.clock.advance(11 * time.Minute)
	if status, out := other.do("POST", LinkRedeemPath, `{"token":"`+late.Token+`"}`); status != http.StatusUnauthorized || !strings.Contains(out, "expired") {
		t.Fatalf("link after 11 min: %d %s", status, out)
	}
	// The page that redeems it carries no token and allows only its own script.
	resp, err := other.client.Get(tg.srv.URL + LinkPagePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") {
		t.Fatalf("link page CSP: %q", csp)
	}
}

func TestSignInRefusesForeignOriginAndNonJSON(t *testing.T) {
	tg := startGate(t)
	b := tg.browser(t)
	b.origin = "https://evil.example"
	if status, _ := b.signIn("dr.li", "correct horse battery"); status != http.StatusForbidden {
		t.Fatalf("sign-in from another site: %d", status)
	}
	b.origin = tg.srv.URL
	req, _ := http.NewRequest("POST", tg.srv.URL+SignInPath, bytes.NewReader([]byte("user=dr.li&password=correct+horse+battery")))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", tg.srv.URL)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("form-encoded sign-in: %d", resp.StatusCode)
	}
	big := `{"user":"dr.li","password":"` + strings.Repeat("x", 5000) + `"}`
	if status, _ := b.do("POST", SignInPath, big); status != http.StatusBadRequest {
		t.Fatalf("5 kB sign-in body: %d", status)
	}
}

// TestSweepForgetsEndedSessions checks that Run's sweep removes sessions that timed
// out from the state, so that it does not grow with every sign-in.
func TestSweepForgetsEndedSessions(t *testing.T) {
	tg := startGate(t)
	tg.browser(t).signIn("dr.li", "correct horse battery")
	tg.browser(t).signIn("obs.wang", "observer password")
	tg.clock.advance(20 * time.Minute)
	b := tg.browser(t)
	b.signIn("dr.li", "correct horse battery")
	tg.clock.advance(15 * time.Minute) // the first two idle 35 min, the last 15
	if err := tg.gate.sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := tg.state.EndUserSessions(context.Background(), "dr.li")
	if err != nil || n != 1 {
		t.Fatalf("dr.li has %d sessions after the sweep (%v), want the one still in use", n, err)
	}
	if n, _ := tg.state.EndUserSessions(context.Background(), "obs.wang"); n != 0 {
		t.Fatalf("obs.wang has %d sessions after 35 idle minutes", n)
	}
}

// FuzzSignInBody sends the sign-in handler whatever a stranger might: it must not
// panic, and nothing but the right password for an enabled account may sign in.
func FuzzSignInBody(f *testing.F) {
	f.Add(`{"user":"dr.li","password":"wrong"}`)
	f.Add(`{"user":"dr.li","password":"correct horse battery","x":1}`)
	f.Add(`{"user":"` + strings.Repeat("a", 100) + `","password":""}`)
	f.Add(`{"user":"dr.li"}{"user":"dr.li"}`)
	f.Add(`[]`)
	state, err := boltstate.Open(filepath.Join(f.TempDir(), "hub.db"), 0)
	if err != nil {
		f.Fatal(err)
	}
	defer state.Close()
	gate := New(Config{Password: cheap}, state, &audittest.Recorder{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	hash, _ := HashPassword("correct horse battery", cheap)
	gate.AddUser(context.Background(), NewUser{ID: "dr.li", Name: "Li", Role: RoleDoctor, Language: LanguageEnglish, PasswordHash: hash}, "fuzz")
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "https://hub.test"+SignInPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "https://hub.test")
		rec := httptest.NewRecorder()
		gate.signIn(rec, req)
		if rec.Code == http.StatusOK {
			var sent struct{ User, Password string }
			if json.Unmarshal([]byte(body), &sent) != nil || sent.Password != "correct horse battery" {
				t.Fatalf("signed in with %q", body)
			}
		}
		gate.address.Succeed(throttle.AddressKey(req.RemoteAddr)) // keep fuzzing past the throttle
		gate.accounts.Succeed("dr.li")
	})
}
