package signin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"lifeline/internal/hubstate"
)

// The operations behind `lifeline hub user …`. Each is audited before it takes
// effect, inside the state's atomic step where there is one, so that no account
// changes without its line in the audit trail (fail closed). by says who asked, for
// the audit: e.g. "admin socket, uid 0".

// NewUser is an account to add. The password arrives hashed (HashPassword), so that
// it never leaves the process it was typed into.
type NewUser struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Role         string `json:"role"`
	Language     string `json:"language"`
	PasswordHash string `json:"password_hash"`
}

// Account is a user as `lifeline hub user list` shows it: everything but the hash.
type Account struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Language string    `json:"language"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created"`
	Changed  time.Time `json:"changed"`
}

func accountOf(u hubstate.User) Account {
	return Account{ID: u.ID, Name: u.Name, Role: u.Role, Language: u.Language, Disabled: u.Disabled, Created: u.Created, Changed: u.Changed}
}

// Check tells whether u may be added.
func (u NewUser) Check() error {
	for _, err := range []error{CheckUserID(u.ID), CheckDisplayName(u.Name), CheckRole(u.Role), CheckLanguage(u.Language)} {
		if err != nil {
			return err
		}
	}
	if err := CheckPasswordHash(u.PasswordHash); err != nil {
		return fmt.Errorf("signin: user %s: %w", u.ID, err)
	}
	return nil
}

// AddUser adds an account.
func (g *Gate) AddUser(ctx context.Context, u NewUser, by string) error {
	if err := u.Check(); err != nil {
		return err
	}
	if _, err := g.state.User(ctx, u.ID); err == nil {
		return fmt.Errorf("signin: user %s: %w", u.ID, hubstate.ErrExists)
	}
	if err := g.audit.Record("account.added", map[string]any{"user": u.ID, "name": u.Name, "role": u.Role, "language": u.Language, "by": by}); err != nil {
		return fmt.Errorf("signin: user %s not added: %w: %w", u.ID, ErrNotAudited, err)
	}
	now := g.cfg.Now().UTC()
	err := g.state.CreateUser(ctx, hubstate.User{ID: u.ID, Name: u.Name, Role: u.Role, Language: u.Language,
		PasswordHash: u.PasswordHash, Created: now, Changed: now})
	if err != nil {
		g.audit.Audit("account.add_failed", map[string]any{"user": u.ID, "reason": err.Error(), "by": by})
		return fmt.Errorf("signin: add user %s: %w", u.ID, err)
	}
	return nil
}

// SetPassword replaces a user's password with the one hashed in hash and ends the
// user's sessions, so that whoever knew the old one is signed out.
func (g *Gate) SetPassword(ctx context.Context, id, hash, by string) error {
	if err := CheckPasswordHash(hash); err != nil {
		return fmt.Errorf("signin: user %s: %w", id, err)
	}
	err := g.change(ctx, id, "account.password_changed", map[string]any{"by": by}, func(u *hubstate.User) {
		u.PasswordHash = hash
	})
	if err != nil {
		return err
	}
	return g.endSessions(ctx, id, "password changed")
}

// SetDisabled disables or enables a user. Disabling ends the user's sessions at
// once: the next request of any of their browsers gets 401.
func (g *Gate) SetDisabled(ctx context.Context, id string, disabled bool, by string) error {
	event := "account.enabled"
	if disabled {
		event = "account.disabled"
	}
	if err := g.change(ctx, id, event, map[string]any{"by": by}, func(u *hubstate.User) { u.Disabled = disabled }); err != nil {
		return err
	}
	if disabled {
		return g.endSessions(ctx, id, "account disabled")
	}
	return nil
}

// setLanguage is the user's own choice of language from the viewer.
func (g *Gate) setLanguage(ctx context.Context, id, lang, remote string) (hubstate.User, error) {
	var out hubstate.User
	err := g.change(ctx, id, "account.language", map[string]any{"language": lang, "by": id, "remote": remote}, func(u *hubstate.User) {
		u.Language = lang
		out = *u
	})
	return out, err
}

// change applies edit to a user, recording event in the audit within the same atomic
// step: should the line not be durable, nothing changes.
func (g *Gate) change(ctx context.Context, id, event string, fields map[string]any, edit func(*hubstate.User)) error {
	var audited bool
	_, err := g.state.ChangeUser(ctx, id, func(u *hubstate.User) error {
		edit(u)
		u.Changed = g.cfg.Now().UTC()
		fields["user"] = id
		if err := g.audit.Record(event, fields); err != nil {
			return fmt.Errorf("%w: %w", ErrNotAudited, err)
		}
		audited = true
		return nil
	})
	if err != nil && audited {
		g.audit.Audit(event+"_failed", map[string]any{"user": id, "reason": err.Error()})
	}
	if err != nil {
		return fmt.Errorf("signin: user %s: %w", id, err)
	}
	return nil
}

// endSessions ends every session of a user and audits how many there were.
func (g *Gate) endSessions(ctx context.Context, id, why string) error {
	n, err := g.state.EndUserSessions(ctx, id)
	if err != nil {
		return fmt.Errorf("signin: end the sessions of %s: %w", id, err)
	}
	if n > 0 {
		g.audit.Audit("session.ended", map[string]any{"user": id, "sessions": n, "reason": why})
	}
	return nil
}

// Users lists every account in ID order.
func (g *Gate) Users(ctx context.Context) ([]Account, error) {
	users, err := g.state.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Account, len(users))
	for i, u := range users {
		out[i] = accountOf(u)
	}
	return out, nil
}

// LinkToken is a one-time sign-in link's secret, as `lifeline hub user link` prints
// it inside a URL.
type LinkToken struct {
	User    string    `json:"user"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// IssueLink makes a one-time sign-in link for an enabled user, valid for the
// configured link lifetime. Only a hash of the token is kept.
func (g *Gate) IssueLink(ctx context.Context, id, by string) (LinkToken, error) {
	u, err := g.state.User(ctx, id)
	if err != nil {
		return LinkToken{}, fmt.Errorf("signin: sign-in link for %s: %w", id, err)
	}
	if u.Disabled {
		return LinkToken{}, fmt.Errorf("signin: user %s is disabled; enable it first", id)
	}
	token := randomToken()
	expires := g.cfg.Now().Add(g.cfg.LinkLifetime).UTC().Truncate(time.Second)
	if err := g.audit.Record("signin.link_issued", map[string]any{"user": id, "expires": expires, "by": by}); err != nil {
		return LinkToken{}, fmt.Errorf("signin: no link issued for %s: %w: %w", id, ErrNotAudited, err)
	}
	if err := g.state.IssueSignInLink(ctx, hubstate.SignInLink{Hash: secretHash(token), User: id, Expires: expires}); err != nil {
		g.audit.Audit("signin.link_not_stored", map[string]any{"user": id, "reason": err.Error()})
		return LinkToken{}, fmt.Errorf("signin: sign-in link for %s: %w", id, err)
	}
	return LinkToken{User: id, Token: token, Expires: expires}, nil
}

// HandoverLifetime is how long a hand-over to another hub works: the browser is sent
// there at once, so anything longer only widens the window for a copied link.
const HandoverLifetime = 30 * time.Second

// IssueHandover makes a one-time sign-in link for v's own account, to be redeemed at
// another hub of the shared state, which keeps the accounts and their links too: the
// doctor signed in here opens a box that publishes to hub to, and goes there signed
// in. The link works once and for HandoverLifetime. fields say what for (the box),
// for the audit line, which is written first: no hand-over exists that the audit
// trail does not show.
func (g *Gate) IssueHandover(ctx context.Context, v Viewer, to string, fields map[string]any) (LinkToken, error) {
	token := randomToken()
	hash := secretHash(token)
	expires := g.cfg.Now().Add(HandoverLifetime).UTC().Truncate(time.Second)
	line := v.AuditFields()
	for k, val := range fields {
		line[k] = val
	}
	line["to"], line["link"], line["expires"] = to, hash[:12], expires
	if err := g.audit.Record("signin.handover_issued", line); err != nil {
		return LinkToken{}, fmt.Errorf("signin: no hand-over of %s to %s: %w: %w", v.User, to, ErrNotAudited, err)
	}
	if err := g.state.IssueSignInLink(ctx, hubstate.SignInLink{Hash: hash, User: v.User, Expires: expires}); err != nil {
		g.audit.Audit("signin.link_not_stored", map[string]any{"user": v.User, "link": hash[:12], "reason": err.Error()})
		return LinkToken{}, fmt.Errorf("signin: hand-over of %s to %s: %w", v.User, to, err)
	}
	return LinkToken{User: v.User, Token: token, Expires: expires}, nil
}

// randomToken returns 256 random bits, base64url without padding (43 characters):
// a session ID or a link's token.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("signin: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// secretHash is what the state keeps of a session ID or a link's token. The secrets
// are 256 random bits, so a plain SHA-256 is enough: there is nothing to guess.
func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
