package pgstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"lifeline/internal/hubstate"
)

const userColumns = `id, name, role, language, password_hash, disabled, created, changed`

func scanUser(row pgx.Row) (hubstate.User, error) {
	var u hubstate.User
	var created, changed pgtype.Timestamptz
	err := row.Scan(&u.ID, &u.Name, &u.Role, &u.Language, &u.PasswordHash, &u.Disabled, &created, &changed)
	u.Created, u.Changed = tm(created), tm(changed)
	return u, err
}

// CreateUser implements hubstate.Accounts; the primary key decides between two hubs
// creating the same ID.
func (s *Store) CreateUser(ctx context.Context, u hubstate.User) error {
	return s.inTx(ctx, "create user "+u.ID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (id) DO NOTHING`,
			u.ID, u.Name, u.Role, u.Language, u.PasswordHash, u.Disabled, ts(u.Created), ts(u.Changed))
		if err == nil && tag.RowsAffected() == 0 {
			return refuse(fmt.Errorf("user %s: %w", u.ID, hubstate.ErrExists))
		}
		return err
	})
}

// ChangeUser implements hubstate.Accounts: the user's row is locked while change
// runs, so concurrent changes on any hub apply one after the other.
func (s *Store) ChangeUser(ctx context.Context, id string, change func(*hubstate.User) error) (hubstate.User, error) {
	var u hubstate.User
	err := s.inTx(ctx, "change user "+id, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 FOR UPDATE`, id))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return refuse(fmt.Errorf("user %s: %w", id, hubstate.ErrNotFound))
		case err != nil:
			return err
		}
		if err := change(&u); err != nil {
			return refuse(err)
		}
		if u.ID != id {
			return refuse(fmt.Errorf("pgstate: a change renamed user %s to %s", id, u.ID))
		}
		_, err = tx.Exec(ctx, `UPDATE users SET name = $2, role = $3, language = $4, password_hash = $5, disabled = $6,
			created = $7, changed = $8 WHERE id = $1`,
			u.ID, u.Name, u.Role, u.Language, u.PasswordHash, u.Disabled, ts(u.Created), ts(u.Changed))
		return err
	})
	return u, err
}

// User implements hubstate.Accounts.
func (s *Store) User(ctx context.Context, id string) (hubstate.User, error) {
	return one(ctx, s, "read user "+id, fmt.Errorf("user %s: %w", id, hubstate.ErrNotFound),
		scanUser, `SELECT `+userColumns+` FROM users WHERE id = $1`, id)
}

// Users implements hubstate.Accounts, in bytewise ID order as the embedded engine.
func (s *Store) Users(ctx context.Context) ([]hubstate.User, error) {
	return all(ctx, s, "list users", scanUser, `SELECT `+userColumns+` FROM users ORDER BY id COLLATE "C"`)
}

const sessionColumns = `hash, user_id, created, last_used, remote`

func scanSession(row pgx.Row) (hubstate.Session, error) {
	var sess hubstate.Session
	var created, lastUsed pgtype.Timestamptz
	err := row.Scan(&sess.Hash, &sess.User, &created, &lastUsed, &sess.Remote)
	sess.Created, sess.LastUsed = tm(created), tm(lastUsed)
	return sess, err
}

// CreateSession implements hubstate.Accounts. The user's row is locked first, so
// that sessions made for one user on several hubs at once are trimmed one after the
// other and the bound holds.
func (s *Store) CreateSession(ctx context.Context, sess hubstate.Session, keep int) error {
	return s.inTx(ctx, "create a session for user "+sess.User, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, sess.User).Scan(&one)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return refuse(fmt.Errorf("session for user %s: %w", sess.User, hubstate.ErrNotFound))
		case err != nil:
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, created = excluded.created,
				last_used = excluded.last_used, remote = excluded.remote`,
			sess.Hash, sess.User, ts(sess.Created), ts(sess.LastUsed), sess.Remote); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM sessions WHERE hash IN (
			SELECT hash FROM sessions WHERE user_id = $1 ORDER BY last_used DESC NULLS LAST, hash OFFSET $2)`,
			sess.User, max(keep, 0))
		return err
	})
}

// Session implements hubstate.Accounts.
func (s *Store) Session(ctx context.Context, hash string) (hubstate.Session, error) {
	return one(ctx, s, "read a session", fmt.Errorf("session: %w", hubstate.ErrNotFound),
		scanSession, `SELECT `+sessionColumns+` FROM sessions WHERE hash = $1`, hash)
}

// TouchSession implements hubstate.Accounts. The last use only moves forward, so
// that touches arriving out of order from several hubs keep the latest.
func (s *Store) TouchSession(ctx context.Context, hash string, at time.Time) error {
	return s.inTx(ctx, "touch a session", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE sessions SET last_used = greatest(last_used, $2) WHERE hash = $1`, hash, ts(at))
		if err == nil && tag.RowsAffected() == 0 {
			return refuse(fmt.Errorf("session: %w", hubstate.ErrNotFound))
		}
		return err
	})
}

// EndSession implements hubstate.Accounts.
func (s *Store) EndSession(ctx context.Context, hash string) error {
	return s.inTx(ctx, "end a session", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, hash)
		return err
	})
}

// EndUserSessions implements hubstate.Accounts.
func (s *Store) EndUserSessions(ctx context.Context, userID string) (int, error) {
	n := 0
	err := s.inTx(ctx, "end the sessions of user "+userID, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
		n = int(tag.RowsAffected())
		return err
	})
	return n, err
}

// IssueSignInLink implements hubstate.Accounts; the link's foreign key refuses a user
// that does not exist.
func (s *Store) IssueSignInLink(ctx context.Context, l hubstate.SignInLink) error {
	return s.inTx(ctx, "issue a sign-in link for user "+l.User, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO sign_in_links (hash, user_id, expires, used_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, expires = excluded.expires, used_at = excluded.used_at`,
			l.Hash, l.User, l.Expires, ts(l.UsedAt))
		if isForeignKey(err) {
			return refuse(fmt.Errorf("sign-in link for user %s: %w", l.User, hubstate.ErrNotFound))
		}
		return err
	})
}

// RedeemSignInLink implements hubstate.Accounts. The link's row is locked before it
// is judged, so of several presentations at once the others wait and read it used.
func (s *Store) RedeemSignInLink(ctx context.Context, hash string, now time.Time) (string, error) {
	var user string
	err := s.inTx(ctx, "redeem a sign-in link", func(tx pgx.Tx) error {
		user = ""
		var expires, usedAt pgtype.Timestamptz
		var owner string
		err := tx.QueryRow(ctx, `SELECT user_id, expires, used_at FROM sign_in_links WHERE hash = $1 FOR UPDATE`, hash).
			Scan(&owner, &expires, &usedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return refuse(hubstate.ErrLinkInvalid)
		case err != nil:
			return err
		case usedAt.Valid:
			return refuse(hubstate.ErrLinkUsed)
		case now.After(expires.Time):
			return refuse(hubstate.ErrLinkExpired)
		}
		if _, err := tx.Exec(ctx, `UPDATE sign_in_links SET used_at = $2 WHERE hash = $1`, hash, ts(now)); err != nil {
			return err
		}
		user = owner
		return nil
	})
	return user, err
}

// DropStale implements hubstate.Accounts.
func (s *Store) DropStale(ctx context.Context, st hubstate.Staleness) (int, error) {
	n := 0
	err := s.inTx(ctx, "drop stale sessions and sign-in links", func(tx pgx.Tx) error {
		sessions, err := tx.Exec(ctx, `DELETE FROM sessions
			WHERE coalesce(last_used, '-infinity') < $1 OR coalesce(created, '-infinity') < $2`,
			ts(st.IdleBefore), ts(st.CreatedBefore))
		if err != nil {
			return err
		}
		links, err := tx.Exec(ctx, `DELETE FROM sign_in_links WHERE expires < $1 OR used_at < $1`, ts(st.LinksBefore))
		n = int(sessions.RowsAffected() + links.RowsAffected())
		return err
	})
	return n, err
}
