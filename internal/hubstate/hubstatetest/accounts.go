package hubstatetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/internal/hubstate"
)

func user(id, role string) hubstate.User {
	return hubstate.User{ID: id, Name: "Dr " + id, Role: role, Language: "zh-CN",
		PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", Created: epoch, Changed: epoch}
}

func session(hash, userID string, at time.Time) hubstate.Session {
	return hubstate.Session{Hash: hash, User: userID, Created: at, LastUsed: at, Remote: "192.0.2.7:50000"}
}

func testUserCreatedOnce(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "create", s.CreateUser(bg, user("dr.li", "doctor")))
	wantErr(t, "create again", s.CreateUser(bg, user("dr.li", "observer")), hubstate.ErrExists)
	u, err := s.User(bg, "dr.li")
	noErr(t, "user", err)
	if u.Role != "doctor" || u.Name != "Dr dr.li" || u.PasswordHash == "" || !u.Created.Equal(epoch) {
		t.Fatalf("stored user: %+v", u)
	}
	_, err = s.User(bg, "dr.wang")
	wantErr(t, "unknown user", err, hubstate.ErrNotFound)
	noErr(t, "create", s.CreateUser(bg, user("admin", "admin")))
	users, err := s.Users(bg)
	noErr(t, "users", err)
	if len(users) != 2 || users[0].ID != "admin" || users[1].ID != "dr.li" {
		t.Fatalf("users: %+v, want admin and dr.li in ID order", users)
	}
}

func testChangeUserIsAtomic(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "create", s.CreateUser(bg, user("dr.li", "doctor")))
	// Many concurrent changes, each counting up from what it read: every one counts.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := s.ChangeUser(bg, "dr.li", func(u *hubstate.User) error {
				var n int
				fmt.Sscanf(u.Name, "n=%d", &n)
				u.Name = fmt.Sprintf("n=%d", n+1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	u, err := s.User(bg, "dr.li")
	noErr(t, "user", err)
	if u.Name != "n=20" {
		t.Fatalf("after 20 concurrent changes the name is %q, want n=20", u.Name)
	}
	refuse := errors.New("refused")
	_, err = s.ChangeUser(bg, "dr.li", func(u *hubstate.User) error { u.Disabled = true; return refuse })
	wantErr(t, "failing change", err, refuse)
	if u, _ := s.User(bg, "dr.li"); u.Disabled {
		t.Fatal("a change that failed was stored")
	}
	_, err = s.ChangeUser(bg, "nobody", func(*hubstate.User) error { return nil })
	wantErr(t, "change unknown", err, hubstate.ErrNotFound)
}

func testSessionLifecycle(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "create", s.CreateUser(bg, user("dr.li", "doctor")))
	wantErr(t, "session of unknown user", s.CreateSession(bg, session("s0", "nobody", epoch), 5), hubstate.ErrNotFound)
	noErr(t, "session", s.CreateSession(bg, session("s1", "dr.li", epoch), 5))
	later := epoch.Add(10 * time.Minute)
	noErr(t, "touch", s.TouchSession(bg, "s1", later))
	noErr(t, "touch with an older time", s.TouchSession(bg, "s1", epoch.Add(time.Minute)))
	got, err := s.Session(bg, "s1")
	noErr(t, "session", err)
	if got.User != "dr.li" || !got.LastUsed.Equal(later) || !got.Created.Equal(epoch) || got.Remote == "" {
		t.Fatalf("session: %+v", got)
	}
	noErr(t, "end", s.EndSession(bg, "s1"))
	noErr(t, "end again", s.EndSession(bg, "s1"))
	_, err = s.Session(bg, "s1")
	wantErr(t, "ended session", err, hubstate.ErrNotFound)
	wantErr(t, "touch ended", s.TouchSession(bg, "s1", later), hubstate.ErrNotFound)
}

// testSessionsPerUserBounded checks that a user's least recently used sessions end
// when they exceed what CreateSession may keep, and that ending all of a user's
// sessions leaves others' alone.
func testSessionsPerUserBounded(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "create", s.CreateUser(bg, user("dr.li", "doctor")))
	noErr(t, "create", s.CreateUser(bg, user("dr.wang", "observer")))
	noErr(t, "other's session", s.CreateSession(bg, session("w1", "dr.wang", epoch), 3))
	for i := range 5 {
		noErr(t, "session", s.CreateSession(bg, session(fmt.Sprintf("l%d", i), "dr.li", epoch.Add(time.Duration(i)*time.Minute)), 3))
	}
	for i, want := range []bool{false, false, true, true, true} {
		_, err := s.Session(bg, fmt.Sprintf("l%d", i))
		if (err == nil) != want {
			t.Fatalf("session l%d kept=%v, want %v (three most recently used)", i, err == nil, want)
		}
	}
	n, err := s.EndUserSessions(bg, "dr.li")
	noErr(t, "end user's sessions", err)
	if n != 3 {
		t.Fatalf("ended %d sessions, want 3", n)
	}
	if _, err := s.Session(bg, "w1"); err != nil {
		t.Fatalf("another user's session: %v", err)
	}
}

func testSignInLinkOnceUnderRace(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "create", s.CreateUser(bg, user("dr.li", "doctor")))
	link := hubstate.SignInLink{Hash: "k1", User: "dr.li", Expires: epoch.Add(10 * time.Minute)}
	wantErr(t, "link for unknown user", s.IssueSignInLink(bg, hubstate.SignInLink{Hash: "k0", User: "nobody", Expires: link.Expires}), hubstate.ErrNotFound)
	noErr(t, "issue link", s.IssueSignInLink(bg, link))
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			id, err := s.RedeemSignInLink(bg, "k1", epoch.Add(time.Minute))
			if err == nil {
				if id != "dr.li" {
					t.Errorf("link redeemed for %q", id)
				}
				won.Add(1)
				return
			}
			if !errors.Is(err, hubstate.ErrLinkUsed) {
				t.Errorf("losing redeem: %v", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("a one-time link signed in %d times", won.Load())
	}
	_, err := s.RedeemSignInLink(bg, "nope", epoch)
	wantErr(t, "unknown link", err, hubstate.ErrLinkInvalid)
	noErr(t, "issue link", s.IssueSignInLink(bg, hubstate.SignInLink{Hash: "k2", User: "dr.li", Expires: epoch.Add(time.Minute)}))
	_, err = s.RedeemSignInLink(bg, "k2", epoch.Add(2*time.Minute))
	wantErr(t, "expired link", err, hubstate.ErrLinkExpired)
}

func testDropStale(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	noErr(t, "create", s.CreateUser(bg, user("dr.li", "doctor")))
	noErr(t, "idle", s.CreateSession(bg, session("idle", "dr.li", epoch), 10))
	old := session("old", "dr.li", epoch)
	old.LastUsed = epoch.Add(2 * time.Hour)
	noErr(t, "old", s.CreateSession(bg, old, 10))
	noErr(t, "fresh", s.CreateSession(bg, session("fresh", "dr.li", epoch.Add(2*time.Hour)), 10))
	noErr(t, "expired link", s.IssueSignInLink(bg, hubstate.SignInLink{Hash: "gone", User: "dr.li", Expires: epoch}))
	noErr(t, "live link", s.IssueSignInLink(bg, hubstate.SignInLink{Hash: "live", User: "dr.li", Expires: epoch.Add(3 * time.Hour)}))
	n, err := s.DropStale(bg, hubstate.Staleness{
		IdleBefore:    epoch.Add(time.Hour),
		CreatedBefore: epoch.Add(time.Minute),
		LinksBefore:   epoch.Add(2 * time.Hour),
	})
	noErr(t, "drop stale", err)
	if n != 3 {
		t.Fatalf("dropped %d records, want 3 (an idle session, an old one, an expired link)", n)
	}
	if _, err := s.Session(bg, "fresh"); err != nil {
		t.Fatalf("fresh session: %v", err)
	}
	if _, err := s.RedeemSignInLink(bg, "live", epoch.Add(2*time.Hour)); err != nil {
		t.Fatalf("live link: %v", err)
	}
	_, err = s.RedeemSignInLink(bg, "gone", epoch)
	wantErr(t, "dropped link", err, hubstate.ErrLinkInvalid)
}

func testAccountsSurviveReopen(t *testing.T, open Opener) {
	s, err := open()
	noErr(t, "open", err)
	noErr(t, "create", s.CreateUser(bg, user("dr.li", "doctor")))
	noErr(t, "session", s.CreateSession(bg, session("s1", "dr.li", epoch), 5))
	noErr(t, "close", s.Close())
	s = mustOpen(t, open)
	if _, err := s.User(bg, "dr.li"); err != nil {
		t.Fatalf("user after reopen: %v", err)
	}
	if _, err := s.Session(bg, "s1"); err != nil {
		t.Fatalf("session after reopen: %v", err)
	}
}
