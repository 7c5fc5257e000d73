package signin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"lifeline/internal/hubstate"
	"lifeline/internal/throttle"
)

// Routes Mount serves.
const (
	SignInPath     = "/api/v1/signin"
	SignOutPath    = "/api/v1/signout"
	WhoamiPath     = "/api/v1/whoami"
	MePath         = "/api/v1/me"
	LinkPagePath   = "/signin/link"
	LinkRedeemPath = "/api/v1/signin/link"
)

// maxBody bounds every request body the gate reads: a user name and a password.
const maxBody = 4 << 10

// hashWait bounds how long a sign-in waits for one of the maxHashing slots before the
// hub answers that it is busy, so a flood queues no more than that.
const hashWait = 5 * time.Second

// Mount adds the gate's routes to mux.
func (g *Gate) Mount(mux *http.ServeMux) {
	signedIn := g.Require()
	mux.HandleFunc("POST "+SignInPath, g.signIn)
	mux.Handle("POST "+SignOutPath, signedIn(http.HandlerFunc(g.signOut)))
	mux.Handle("GET "+WhoamiPath, signedIn(http.HandlerFunc(g.whoami)))
	mux.Handle("PATCH "+MePath, signedIn(http.HandlerFunc(g.patchMe)))
	mux.HandleFunc("GET "+LinkPagePath, serveLinkPage)
	mux.HandleFunc("POST "+LinkRedeemPath, g.redeemLink)
}

// Whoami is what the viewer's pages learn about who is signed in.
type Whoami struct {
	User     string `json:"user"`
	Name     string `json:"name"`
	Role     string `json:"role"`
	Language string `json:"language"`
	CSRF     string `json:"csrf"` // send back in the X-CSRF-Token header
}

func (g *Gate) signIn(w http.ResponseWriter, r *http.Request) {
	if err := checkOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	var req struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	name := strings.ToLower(strings.TrimSpace(req.User))
	if len(name) > 64 {
		name = name[:64]
	}
	now, addr := g.cfg.Now(), throttle.AddressKey(r.RemoteAddr)
	if wait := g.address.Blocked(addr, now); wait > 0 {
		writeThrottled(w, "from this address", wait)
		return
	}
	if wait := g.accounts.Blocked(name, now); wait > 0 {
		writeThrottled(w, "for this account", wait)
		return
	}
	u, err := g.state.User(r.Context(), name)
	known := err == nil
	if err != nil && !errors.Is(err, hubstate.ErrNotFound) {
		writeError(w, http.StatusInternalServerError, "sign-in is unavailable: "+err.Error())
		return
	}
	hash := g.decoyHash()
	if known {
		hash = u.PasswordHash
	}
	ok, err := g.verify(r.Context(), req.Password, hash)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if !known || !ok || u.Disabled {
		g.refuse(w, r, name, known, ok && u.Disabled, now)
		return
	}
	g.accounts.Succeed(name)
	g.startSession(w, r, u, "password", "")
}

// verify checks a password in one of the maxHashing slots.
func (g *Gate) verify(ctx context.Context, pw, hash string) (bool, error) {
	wait := time.NewTimer(hashWait)
	defer wait.Stop()
	select {
	case g.hashing <- struct{}{}:
	case <-wait.C:
		return false, errors.New("the hub is busy signing others in; try again in a moment")
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-g.hashing }()
	ok, err := verifyPassword(pw, hash)
	if err != nil {
		return false, fmt.Errorf("the stored password cannot be checked: %w", err)
	}
	return ok, nil
}

// refuse answers a failed sign-in, counts it against the address and a known account,
// and audits it. Every refusal says the same unless the password was right for a
// disabled account, so a stranger learns nothing about which names exist.
func (g *Gate) refuse(w http.ResponseWriter, r *http.Request, name string, known, disabled bool, now time.Time) {
	reason := "wrong password"
	switch {
	case !known:
		reason = "unknown user"
	case disabled:
		reason = "account disabled"
	}
	wait := g.address.Fail(throttle.AddressKey(r.RemoteAddr), now)
	if known {
		wait = max(wait, g.accounts.Fail(name, now))
	}
	fields := map[string]any{"user": name, "remote": r.RemoteAddr, "reason": reason}
	if wait > 0 {
		fields["blocked_for"] = wait.String()
	}
	g.audit.Audit("signin.failed", fields)
	switch {
	case disabled:
		writeError(w, http.StatusForbidden, "this account is disabled; ask the hub's administrator")
	case wait > 0:
		writeThrottled(w, "for this account or address", wait)
	default:
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
	}
}

// startSession signs u in: audited first, and refused if the audit line is not
// durable; then the session is stored and its cookie set.
//
// link names the sign-in link used, as its issue was audited, so that a hand-over
// from another hub can be followed from one line to the other.
func (g *Gate) startSession(w http.ResponseWriter, r *http.Request, u hubstate.User, method, link string) {
	id := randomToken()
	hash := secretHash(id)
	fields := map[string]any{"user": u.ID, "role": u.Role, "remote": r.RemoteAddr, "session": hash[:12], "method": method}
	if link != "" {
		fields["link"] = link
	}
	err := g.audit.Record("signin", fields)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "sign-in refused: the hub cannot write its audit log")
		return
	}
	now := g.cfg.Now().UTC()
	sess := hubstate.Session{Hash: hash, User: u.ID, Created: now, LastUsed: now, Remote: r.RemoteAddr}
	if err := g.state.CreateSession(r.Context(), sess, g.cfg.SessionsPerUser); err != nil {
		g.audit.Audit("signin.not_stored", map[string]any{"user": u.ID, "session": hash[:12], "reason": err.Error()})
		writeError(w, http.StatusInternalServerError, "sign-in failed: "+err.Error())
		return
	}
	g.setSessionCookie(w, id)
	writeJSON(w, http.StatusOK, Whoami{User: u.ID, Name: u.Name, Role: u.Role, Language: u.Language, CSRF: csrfToken(id)})
}

// signOut ends the session. Its audit line is an observation: a sign-out is never
// refused, since refusing it would keep a session alive.
func (g *Gate) signOut(w http.ResponseWriter, r *http.Request) {
	v, _ := ViewerFrom(r.Context())
	c, _ := r.Cookie(CookieName)
	if err := g.state.EndSession(r.Context(), secretHash(c.Value)); err != nil {
		writeError(w, http.StatusInternalServerError, "sign-out failed: "+err.Error())
		return
	}
	g.audit.Audit("signout", v.AuditFields())
	clearSessionCookie(w)
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gate) whoami(w http.ResponseWriter, r *http.Request) {
	v, _ := ViewerFrom(r.Context())
	writeJSON(w, http.StatusOK, Whoami{User: v.User, Name: v.Name, Role: v.Role, Language: v.Language, CSRF: v.CSRF})
}

// patchMe lets a person change their own language.
func (g *Gate) patchMe(w http.ResponseWriter, r *http.Request) {
	v, _ := ViewerFrom(r.Context())
	var req struct {
		Language string `json:"language"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := CheckLanguage(req.Language); err != nil {
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "signin: "))
		return
	}
	u, err := g.setLanguage(r.Context(), v.User, req.Language, r.RemoteAddr)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrNotAudited) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, Whoami{User: u.ID, Name: u.Name, Role: u.Role, Language: u.Language, CSRF: v.CSRF})
}

// redeemLink signs a browser in with a one-time link's token.
func (g *Gate) redeemLink(w http.ResponseWriter, r *http.Request) {
	if err := checkOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	now, addr := g.cfg.Now(), throttle.AddressKey(r.RemoteAddr)
	if wait := g.address.Blocked(addr, now); wait > 0 {
		writeThrottled(w, "from this address", wait)
		return
	}
	linkHash := secretHash(req.Token)
	id, err := g.state.RedeemSignInLink(r.Context(), linkHash, now)
	var u hubstate.User
	if err == nil {
		u, err = g.state.User(r.Context(), id)
	}
	if err == nil && u.Disabled {
		err = errors.New("this account is disabled")
	}
	if err != nil {
		g.address.Fail(addr, now)
		g.audit.Audit("signin.failed", map[string]any{"user": id, "remote": r.RemoteAddr, "link": linkHash[:12], "reason": "link: " + err.Error()})
		writeError(w, http.StatusUnauthorized, "this sign-in link does not work: "+err.Error())
		return
	}
	g.startSession(w, r, u, "link", linkHash[:12])
}

// readJSON decodes a bounded JSON body, refusing other content types so that a plain
// HTML form elsewhere cannot post to the gate.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		return errors.New("send JSON with Content-Type: application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body is not the expected JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("request body has more than one JSON value")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeThrottled(w http.ResponseWriter, who string, wait time.Duration) {
	secs := int(wait.Round(time.Second) / time.Second)
	secs = max(secs, 1)
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many failed sign-ins %s; try again in %d s", who, secs))
}
