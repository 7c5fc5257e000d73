// Package signin is who may use the hub's viewer and how they prove it: accounts with
// argon2id passwords, browser sessions in secure cookies, CSRF protection, sign-in
// throttling, one-time sign-in links, and the audit of all of it. It runs on the hub.
//
// The ED screen and WHEP wrap their handlers with Gate.Require, and read who is
// watching with ViewerFrom:
//
//	gate := signin.New(cfg, state, auditLog, log)
//	gate.Mount(mux) // sign-in, sign-out, whoami, language, sign-in links
//	mux.Handle("GET /board", gate.Require(signin.RoleDoctor, signin.RoleObserver)(board))
//	mux.Handle("POST /whep/{device}", gate.Require(signin.RoleDoctor, signin.RoleObserver)(whep))
//
//	func board(w http.ResponseWriter, r *http.Request) {
//		v, _ := signin.ViewerFrom(r.Context()) // v.User, v.Name, v.Role, v.Language
//		…
//	}
//
// Require answers 401 (JSON {"error": …}) to a browser that is not signed in and 403
// to a role not named, before the wrapped handler sees the request, so an unsigned-in
// browser gets no data. For every method but GET, HEAD and OPTIONS it also checks the
// request's Origin against its Host and the X-CSRF-Token header against the session's
// token (whoami returns it), so a page elsewhere cannot act in a doctor's name.
//
// The routes Mount serves (JSON in and out):
//
//	POST  /api/v1/signin       {"user","password"} → whoami, sets the session cookie
//	POST  /api/v1/signout      ends the session, clears the cookie
//	GET   /api/v1/whoami       {"user","name","role","language","csrf"} or 401
//	PATCH /api/v1/me           {"language":"en"} → whoami
//	GET   /signin/link         a page that redeems the token in its #fragment
//	POST  /api/v1/signin/link  {"token"} → whoami, sets the session cookie
package signin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"lifeline/internal/hubstate"
	"lifeline/internal/throttle"
)

// Roles. A doctor watches, talks to the crew and asks for a 12-lead; an observer only
// watches; an admin manages accounts and may watch.
const (
	RoleDoctor   = "doctor"
	RoleObserver = "observer"
	RoleAdmin    = "admin"
)

// Languages of the viewer; zh-CN is the default.
const (
	LanguageChinese = "zh-CN"
	LanguageEnglish = "en"
)

// Auditor records security events (internal/audit's Log). Record must make the line
// durable or fail, and the action is then refused; Audit is for observations.
type Auditor interface {
	Record(event string, fields map[string]any) error
	Audit(event string, fields map[string]any)
}

// Config sets the gate's policy. Zero values mean the defaults.
type Config struct {
	IdleTimeout     time.Duration  // a session unused this long ends; default 30 min
	SessionLifetime time.Duration  // every session ends this long after sign-in; default 12 h
	LinkLifetime    time.Duration  // a sign-in link works this long, once; default 10 min
	SessionsPerUser int            // a user's least recently used sessions beyond this end; default 10
	Password        PasswordParams // for hashes made by the gate; default DefaultPasswordParams
	// Now is the clock; nil means time.Now. Sessions and throttles follow it.
	Now func() time.Time
}

func (c *Config) populate() {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Minute
	}
	if c.SessionLifetime <= 0 {
		c.SessionLifetime = 12 * time.Hour
	}
	if c.LinkLifetime <= 0 {
		c.LinkLifetime = 10 * time.Minute
	}
	if c.SessionsPerUser <= 0 {
		c.SessionsPerUser = 10
	}
	if c.Password == (PasswordParams{}) {
		c.Password = DefaultPasswordParams
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Throttling policy. An account may fail 5 times; then it waits 1 s, 2 s, 4 s … up to
// 15 min between guesses, which leaves a guesser about 100 tries a day while a doctor
// who mistypes a few times waits seconds. An address may fail 20 times (a shared
// ward computer, a NAT) before the same back-off, across accounts, which stops one
// machine from trying one password on every account. Failures are forgotten after
// an hour without one.
const (
	accountFree, addressFree = 5, 20
	throttleBase             = time.Second
	throttleCeiling          = 15 * time.Minute
	throttleForget           = time.Hour
	// addressTableSize bounds the per-address table: 4096 entries of well under
	// 100 bytes. An attacker who fills it evicts the oldest address; the per-account
	// limit holds regardless.
	addressTableSize = 4096
	// accountTableSize bounds the per-account table; only existing accounts enter it.
	accountTableSize = 4096
	// maxHashing bounds concurrent argon2 computations, each DefaultPasswordParams'
	// 64 MiB, so a burst of sign-ins cannot exhaust the hub's memory.
	maxHashing = 2
)

// Gate admits signed-in people to the viewer. It is safe for concurrent use.
type Gate struct {
	cfg      Config
	state    hubstate.Accounts
	audit    Auditor
	log      *slog.Logger
	accounts *throttle.Table
	address  *throttle.Table
	hashing  chan struct{}
	// decoy is verified against when a sign-in names no account, so that an
	// unknown name takes as long as a wrong password. It is made at the first
	// sign-in, so that an administration command does not pay for it.
	decoyOnce sync.Once
	decoy     string
}

// New returns a gate on the accounts in state. It starts nothing; Run sweeps ended
// sessions.
func New(cfg Config, state hubstate.Accounts, audit Auditor, log *slog.Logger) *Gate {
	cfg.populate()
	return &Gate{
		cfg: cfg, state: state, audit: audit, log: log,
		accounts: throttle.New(throttle.Policy{Free: accountFree, Base: throttleBase, Ceiling: throttleCeiling, Forget: throttleForget, Size: accountTableSize}),
		address:  throttle.New(throttle.Policy{Free: addressFree, Base: throttleBase, Ceiling: throttleCeiling, Forget: throttleForget, Size: addressTableSize}),
		hashing:  make(chan struct{}, maxHashing),
	}
}

// decoyHash returns the hash an unknown name's password is checked against.
func (g *Gate) decoyHash() string {
	g.decoyOnce.Do(func() {
		var err error
		g.decoy, err = HashPassword("decoy password, never valid", g.cfg.Password)
		if err != nil {
			panic("signin: hashing the decoy password: " + err.Error()) // only fails without randomness
		}
	})
	return g.decoy
}

// Run forgets ended sessions and used or expired links every few minutes until ctx
// ends, so that the state does not grow with every sign-in.
func (g *Gate) Run(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Minute)
	defer tick.Stop()
	for {
		if err := g.sweep(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("signin: sweeping ended sessions", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (g *Gate) sweep(ctx context.Context) error {
	now := g.cfg.Now()
	_, err := g.state.DropStale(ctx, g.staleness(now))
	return err
}

func (g *Gate) staleness(now time.Time) hubstate.Staleness {
	return hubstate.Staleness{
		IdleBefore:    now.Add(-g.cfg.IdleTimeout),
		CreatedBefore: now.Add(-g.cfg.SessionLifetime),
		LinksBefore:   now,
	}
}

var userIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// CheckUserID tells whether id can name an account: 1 to 64 lower-case letters,
// digits, '.', '_' or '-', starting with a letter or digit.
func CheckUserID(id string) error {
	if !userIDPattern.MatchString(id) {
		return fmt.Errorf("signin: user name %q: use 1 to 64 lower-case letters, digits, '.', '_' or '-'", id)
	}
	return nil
}

// CheckDisplayName tells whether name can be shown as a person's name: 1 to 100
// characters, no control characters.
func CheckDisplayName(name string) error {
	n := utf8.RuneCountInString(name)
	if strings.TrimSpace(name) == "" || n > 100 || !utf8.ValidString(name) {
		return fmt.Errorf("signin: display name %q: use 1 to 100 characters", name)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("signin: display name %q has a control character", name)
	}
	return nil
}

// CheckRole tells whether role is one of the roles.
func CheckRole(role string) error {
	switch role {
	case RoleDoctor, RoleObserver, RoleAdmin:
		return nil
	}
	return fmt.Errorf("signin: role %q: use %s, %s or %s", role, RoleDoctor, RoleObserver, RoleAdmin)
}

// CheckLanguage tells whether lang is a language of the viewer.
func CheckLanguage(lang string) error {
	switch lang {
	case LanguageChinese, LanguageEnglish:
		return nil
	}
	return fmt.Errorf("signin: language %q: use %s or %s", lang, LanguageChinese, LanguageEnglish)
}

// ErrNotAudited wraps the audit log's error when an action was refused because its
// audit line could not be made durable.
var ErrNotAudited = errors.New("refused: the audit log cannot record it")
