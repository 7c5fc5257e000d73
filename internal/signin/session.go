package signin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"time"

	"lifeline/internal/hubstate"
)

// CookieName is the session cookie. The __Host- prefix makes browsers refuse it
// unless it is Secure, for Path=/ and without a Domain, so no other host or path can
// set or shadow it.
const CookieName = "__Host-lifeline-session"

// CSRFHeader carries the session's CSRF token on every state-changing request.
const CSRFHeader = "X-CSRF-Token"

// touchEvery is how stale a session's last use may be in the state before a request
// records it again: the idle timeout is counted in minutes, and writing on every
// request would cost an fsync each.
const touchEvery = time.Minute

// Viewer is the signed-in person a request comes from.
type Viewer struct {
	User     string // account ID, e.g. "dr.li"
	Name     string // display name
	Role     string // RoleDoctor, RoleObserver or RoleAdmin
	Language string // LanguageChinese or LanguageEnglish
	// Session names the session in the audit without giving it away: the first 12
	// hex digits of its hash.
	Session string
	Remote  string // the request's client address
	// CSRF is the session's token, which a page sends back in the X-CSRF-Token
	// header of every state-changing request; a page may embed it.
	CSRF string
}

// AuditFields returns the fields that say who did something, for an audit line; the
// caller adds what was done (the device watched, the message sent).
func (v Viewer) AuditFields() map[string]any {
	return map[string]any{"user": v.User, "role": v.Role, "session": v.Session, "remote": v.Remote}
}

type viewerKey struct{}

// ViewerFrom returns the person Require admitted for this request.
func ViewerFrom(ctx context.Context) (Viewer, bool) {
	v, ok := ctx.Value(viewerKey{}).(Viewer)
	return v, ok
}

// Require returns middleware that admits only signed-in people in one of roles (none
// named: any role), checks CSRF on state-changing requests, and puts the Viewer in
// the request's context.
func (g *Gate) Require(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v, id, err := g.viewer(r)
			if err != nil {
				writeError(w, http.StatusUnauthorized, err.Error())
				return
			}
			if len(roles) > 0 && !slices.Contains(roles, v.Role) {
				g.audit.Audit("access.refused", withFields(v.AuditFields(), "path", r.URL.Path, "reason", "role"))
				writeError(w, http.StatusForbidden, "your role ("+v.Role+") may not do this")
				return
			}
			if !safeMethod(r.Method) {
				if err := checkCSRF(r, id); err != nil {
					g.audit.Audit("access.refused", withFields(v.AuditFields(), "path", r.URL.Path, "reason", err.Error()))
					writeError(w, http.StatusForbidden, err.Error())
					return
				}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), viewerKey{}, v)))
		})
	}
}

// errSignedOut is what a browser without a live session is told.
var errSignedOut = errors.New("not signed in")

// viewer finds the live session of r and its user, ending a session that timed out
// or whose user was disabled, and records its use. It returns the session's ID for
// the CSRF check.
func (g *Gate) viewer(r *http.Request) (Viewer, string, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || len(c.Value) != 43 {
		return Viewer{}, "", errSignedOut
	}
	ctx, hash := r.Context(), secretHash(c.Value)
	s, err := g.state.Session(ctx, hash)
	if err != nil {
		return Viewer{}, "", errSignedOut
	}
	now := g.cfg.Now()
	u, err := g.state.User(ctx, s.User)
	switch {
	case err != nil || u.Disabled:
		g.end(ctx, hash, s.User, "account disabled or removed")
		return Viewer{}, "", errSignedOut
	case g.staleness(now).Stale(s):
		g.end(ctx, hash, s.User, "timed out")
		return Viewer{}, "", errors.New("session timed out; sign in again")
	}
	if now.Sub(s.LastUsed) >= touchEvery {
		if err := g.state.TouchSession(ctx, hash, now); err != nil && !errors.Is(err, hubstate.ErrNotFound) {
			g.log.Warn("signin: recording a session's use", "user", s.User, "err", err)
		}
	}
	return Viewer{User: u.ID, Name: u.Name, Role: u.Role, Language: u.Language, Session: hash[:12], Remote: r.RemoteAddr, CSRF: csrfToken(c.Value)}, c.Value, nil
}

// end ends one session and audits why.
func (g *Gate) end(ctx context.Context, hash, user, why string) {
	if err := g.state.EndSession(ctx, hash); err != nil {
		g.log.Warn("signin: ending a session", "user", user, "err", err)
	}
	g.audit.Audit("session.ended", map[string]any{"user": user, "session": hash[:12], "reason": why})
}

// csrfToken is the session's CSRF token: a hash of the session ID under its own
// label. A page of the hub's origin reads it from whoami; a page elsewhere cannot,
// and the session ID cannot be recovered from it.
func csrfToken(sessionID string) string {
	sum := sha256.Sum256([]byte("lifeline csrf\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// checkCSRF refuses a state-changing request that did not come from a page of the
// hub's own origin with the session's token.
func checkCSRF(r *http.Request, sessionID string) error {
	if err := checkOrigin(r); err != nil {
		return err
	}
	got := r.Header.Get(CSRFHeader)
	if subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(sessionID))) != 1 {
		return errors.New("missing or wrong " + CSRFHeader + " header; reload the page")
	}
	return nil
}

// checkOrigin refuses a request whose Origin is not the hub's own origin as the
// browser reached it. Browsers send Origin on every POST, PATCH and DELETE.
func checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return errors.New("request without an Origin header refused")
	}
	if origin != "https://"+r.Host {
		return errors.New("request from another site (" + origin + ") refused")
	}
	return nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// setSessionCookie gives the browser its session: never readable by scripts, sent
// only over HTTPS and only with requests from the hub's own pages.
func (g *Gate) setSessionCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/",
		MaxAge:   int(g.cfg.SessionLifetime / time.Second),
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// withFields returns f with more key, value pairs.
func withFields(f map[string]any, kv ...string) map[string]any {
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i]] = kv[i+1]
	}
	return f
}
