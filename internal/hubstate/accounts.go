package hubstate

import (
	"context"
	"errors"
	"time"
)

// Accounts keeps the people who may use the hub's viewer (the emergency doctors,
// observers and administrators), their browser sessions, and one-time sign-in links.
//
// Secrets are never stored as they are: a user's password only as its encoded hash,
// a session and a link only as a hash of their random identifier, so that reading the
// state gives away nothing that signs anybody in. Which hash and how it is checked is
// the sign-in package's business; the engine compares stored strings only.
type Accounts interface {
	// CreateUser stores a new user; ErrExists if the ID is taken.
	CreateUser(ctx context.Context, u User) error
	// ChangeUser calls change on the user as stored and stores what it leaves, as one
	// atomic step (a PostgreSQL engine: SELECT … FOR UPDATE, then UPDATE), and returns
	// the stored user. ErrNotFound if there is none; change's error stores nothing and
	// is returned. change must not alter the ID.
	ChangeUser(ctx context.Context, id string, change func(*User) error) (User, error)
	// User returns one user, or ErrNotFound.
	User(ctx context.Context, id string) (User, error)
	// Users lists every user in ID order.
	Users(ctx context.Context) ([]User, error)

	// CreateSession stores a new session. When its user then has more than keep
	// sessions, the least recently used are ended, so that no user piles up sessions
	// without bound. ErrNotFound if the user does not exist.
	CreateSession(ctx context.Context, s Session, keep int) error
	// Session returns the session whose Hash is hash, or ErrNotFound.
	Session(ctx context.Context, hash string) (Session, error)
	// TouchSession records that the session was used at at; ErrNotFound if it ended.
	TouchSession(ctx context.Context, hash string, at time.Time) error
	// EndSession ends one session; an unknown one is not an error.
	EndSession(ctx context.Context, hash string) error
	// EndUserSessions ends every session of a user and returns how many there were.
	EndUserSessions(ctx context.Context, userID string) (int, error)

	// IssueSignInLink stores a one-time sign-in link; ErrNotFound if its user does not
	// exist.
	IssueSignInLink(ctx context.Context, l SignInLink) error
	// RedeemSignInLink uses the link whose Hash is hash exactly once, even when it is
	// presented several times at once, and returns its user's ID. It refuses an
	// unknown link (ErrLinkInvalid), a used one (ErrLinkUsed) and one expired at now
	// (ErrLinkExpired).
	RedeemSignInLink(ctx context.Context, hash string, now time.Time) (userID string, err error)

	// DropStale forgets sessions that ended by age and links no longer usable, as
	// Staleness says, and returns how many records went.
	DropStale(ctx context.Context, s Staleness) (int, error)
}

// User is one person who may sign in to the viewer. Its JSON form is the embedded
// engine's record.
type User struct {
	ID           string    `json:"id"`   // what the person types to sign in, e.g. "dr.li"
	Name         string    `json:"name"` // shown on the screen and in the audit, e.g. "李医生"
	Role         string    `json:"role"`
	Language     string    `json:"language"`
	PasswordHash string    `json:"password_hash"` // encoded, with its parameters and salt
	Disabled     bool      `json:"disabled,omitempty"`
	Created      time.Time `json:"created"`
	Changed      time.Time `json:"changed"`
}

// Session is one signed-in browser.
type Session struct {
	Hash     string    `json:"hash"` // hex SHA-256 of the session's random ID
	User     string    `json:"user"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	Remote   string    `json:"remote,omitempty"` // the address it signed in from, for the audit
}

// SignInLink is a one-time sign-in link as the hub keeps it.
type SignInLink struct {
	Hash    string    `json:"hash"` // hex SHA-256 of the link's random token
	User    string    `json:"user"`
	Expires time.Time `json:"expires"`
	UsedAt  time.Time `json:"used_at,omitzero"`
}

// Staleness says which sessions and links DropStale forgets: sessions last used
// before IdleBefore or created before CreatedBefore, and links that expired or were
// used before LinksBefore.
type Staleness struct {
	IdleBefore    time.Time
	CreatedBefore time.Time
	LinksBefore   time.Time
}

// Stale reports whether s is one that st forgets.
func (st Staleness) Stale(s Session) bool {
	return s.LastUsed.Before(st.IdleBefore) || s.Created.Before(st.CreatedBefore)
}

// Errors about accounts and links; callers test them with errors.Is.
var (
	ErrExists      = errors.New("hubstate: already exists")
	ErrLinkInvalid = errors.New("sign-in link is not valid at this hub")
	ErrLinkUsed    = errors.New("sign-in link was already used")
	ErrLinkExpired = errors.New("sign-in link has expired")
)
