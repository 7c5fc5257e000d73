package boltstate

import (
	"context"
	"fmt"
	"sort"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/hubstate"
)

// Buckets of the viewer's people and access.
const (
	bucketUsers    = "accounts/users"    // user ID → hubstate.User
	bucketSessions = "accounts/sessions" // hex SHA-256 of a session ID → hubstate.Session
	bucketLinks    = "accounts/links"    // hex SHA-256 of a link's token → hubstate.SignInLink
)

// CreateUser implements hubstate.Accounts.
func (s *Store) CreateUser(ctx context.Context, u hubstate.User) error {
	return s.update(ctx, func(tx *durable.Tx) error {
		var old hubstate.User
		found, err := durable.GetJSONTx(tx, bucketUsers, u.ID, &old)
		switch {
		case err != nil:
			return err
		case found:
			return fmt.Errorf("user %s: %w", u.ID, hubstate.ErrExists)
		}
		return durable.PutJSONTx(tx, bucketUsers, u.ID, u)
	})
}

// ChangeUser implements hubstate.Accounts. bbolt's single writer makes the read and
// the write one step.
func (s *Store) ChangeUser(ctx context.Context, id string, change func(*hubstate.User) error) (hubstate.User, error) {
	var u hubstate.User
	err := s.update(ctx, func(tx *durable.Tx) error {
		found, err := durable.GetJSONTx(tx, bucketUsers, id, &u)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("user %s: %w", id, hubstate.ErrNotFound)
		}
		if err := change(&u); err != nil {
			return err
		}
		if u.ID != id {
			return fmt.Errorf("boltstate: a change renamed user %s to %s", id, u.ID)
		}
		return durable.PutJSONTx(tx, bucketUsers, id, u)
	})
	return u, err
}

// User implements hubstate.Accounts.
func (s *Store) User(ctx context.Context, id string) (hubstate.User, error) {
	var u hubstate.User
	err := s.view(ctx, func(tx *durable.Tx) error {
		found, err := durable.GetJSONTx(tx, bucketUsers, id, &u)
		if err == nil && !found {
			return fmt.Errorf("user %s: %w", id, hubstate.ErrNotFound)
		}
		return err
	})
	return u, err
}

// Users implements hubstate.Accounts.
func (s *Store) Users(ctx context.Context) ([]hubstate.User, error) {
	var out []hubstate.User
	err := s.view(ctx, func(tx *durable.Tx) error {
		return each(tx, bucketUsers, func(_ string, u hubstate.User) error {
			out = append(out, u)
			return nil
		})
	})
	return out, err
}

// CreateSession implements hubstate.Accounts.
func (s *Store) CreateSession(ctx context.Context, sess hubstate.Session, keep int) error {
	return s.update(ctx, func(tx *durable.Tx) error {
		var u hubstate.User
		found, err := durable.GetJSONTx(tx, bucketUsers, sess.User, &u)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("session for user %s: %w", sess.User, hubstate.ErrNotFound)
		}
		if err := durable.PutJSONTx(tx, bucketSessions, sess.Hash, sess); err != nil {
			return err
		}
		theirs, err := userSessions(tx, sess.User)
		if err != nil || len(theirs) <= keep {
			return err
		}
		sort.Slice(theirs, func(i, j int) bool { return theirs[i].LastUsed.Before(theirs[j].LastUsed) })
		for _, old := range theirs[:len(theirs)-keep] {
			if err := del(tx, bucketSessions, old.Hash); err != nil {
				return err
			}
		}
		return nil
	})
}

// userSessions returns every session of one user. Sessions are few (each user keeps
// a bounded number), so a scan is cheaper than keeping an index in step.
func userSessions(tx *durable.Tx, userID string) ([]hubstate.Session, error) {
	var out []hubstate.Session
	err := each(tx, bucketSessions, func(_ string, sess hubstate.Session) error {
		if sess.User == userID {
			out = append(out, sess)
		}
		return nil
	})
	return out, err
}

// Session implements hubstate.Accounts.
func (s *Store) Session(ctx context.Context, hash string) (hubstate.Session, error) {
	var sess hubstate.Session
	err := s.view(ctx, func(tx *durable.Tx) error {
		found, err := durable.GetJSONTx(tx, bucketSessions, hash, &sess)
		if err == nil && !found {
			return fmt.Errorf("session: %w", hubstate.ErrNotFound)
		}
		return err
	})
	return sess, err
}

// TouchSession implements hubstate.Accounts.
func (s *Store) TouchSession(ctx context.Context, hash string, at time.Time) error {
	return s.update(ctx, func(tx *durable.Tx) error {
		var sess hubstate.Session
		found, err := durable.GetJSONTx(tx, bucketSessions, hash, &sess)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("session: %w", hubstate.ErrNotFound)
		}
		if at.After(sess.LastUsed) {
			sess.LastUsed = at
		}
		return durable.PutJSONTx(tx, bucketSessions, hash, sess)
	})
}

// EndSession implements hubstate.Accounts.
func (s *Store) EndSession(ctx context.Context, hash string) error {
	return s.update(ctx, func(tx *durable.Tx) error { return del(tx, bucketSessions, hash) })
}

// EndUserSessions implements hubstate.Accounts.
func (s *Store) EndUserSessions(ctx context.Context, userID string) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *durable.Tx) error {
		theirs, err := userSessions(tx, userID)
		if err != nil {
			return err
		}
		for _, sess := range theirs {
			if err := del(tx, bucketSessions, sess.Hash); err != nil {
				return err
			}
		}
		n = len(theirs)
		return nil
	})
	return n, err
}

// IssueSignInLink implements hubstate.Accounts.
func (s *Store) IssueSignInLink(ctx context.Context, l hubstate.SignInLink) error {
	return s.update(ctx, func(tx *durable.Tx) error {
		var u hubstate.User
		found, err := durable.GetJSONTx(tx, bucketUsers, l.User, &u)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("sign-in link for user %s: %w", l.User, hubstate.ErrNotFound)
		}
		return durable.PutJSONTx(tx, bucketLinks, l.Hash, l)
	})
}

// RedeemSignInLink implements hubstate.Accounts; the single writer makes the check
// and the use one step.
func (s *Store) RedeemSignInLink(ctx context.Context, hash string, now time.Time) (string, error) {
	var user string
	err := s.update(ctx, func(tx *durable.Tx) error {
		var l hubstate.SignInLink
		found, err := durable.GetJSONTx(tx, bucketLinks, hash, &l)
		switch {
		case err != nil:
			return err
		case !found:
			return hubstate.ErrLinkInvalid
		case !l.UsedAt.IsZero():
			return hubstate.ErrLinkUsed
		case now.After(l.Expires):
			return hubstate.ErrLinkExpired
		}
		l.UsedAt = now
		user = l.User
		return durable.PutJSONTx(tx, bucketLinks, hash, l)
	})
	return user, err
}

// DropStale implements hubstate.Accounts.
func (s *Store) DropStale(ctx context.Context, st hubstate.Staleness) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *durable.Tx) error {
		var sessions, links []string
		if err := each(tx, bucketSessions, func(k string, sess hubstate.Session) error {
			if st.Stale(sess) {
				sessions = append(sessions, k)
			}
			return nil
		}); err != nil {
			return err
		}
		if err := each(tx, bucketLinks, func(k string, l hubstate.SignInLink) error {
			if l.Expires.Before(st.LinksBefore) || (!l.UsedAt.IsZero() && l.UsedAt.Before(st.LinksBefore)) {
				links = append(links, k)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range sessions {
			if err := del(tx, bucketSessions, k); err != nil {
				return err
			}
		}
		for _, k := range links {
			if err := del(tx, bucketLinks, k); err != nil {
				return err
			}
		}
		n = len(sessions) + len(links)
		return nil
	})
	return n, err
}
