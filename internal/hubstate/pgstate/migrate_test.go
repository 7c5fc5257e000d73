package pgstate

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lifeline/internal/hubstate"
)

// appliedSteps reads schema_migrations as it is.
func appliedSteps(t *testing.T, dsn string) map[int]time.Time {
	t.Helper()
	conn, err := pgx.Connect(bg, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(bg)
	rows, err := conn.Query(bg, `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	steps := map[int]time.Time{}
	var v int
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&v, &at}, func() error { steps[v] = at; return nil }); err != nil {
		t.Fatal(err)
	}
	return steps
}

func TestMigrationsCountFromOne(t *testing.T) {
	if err := schema.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestMigrations brings empty databases to the current version, from nothing and
// from each earlier version with state written by that version, and re-opens an up
// to date one, which must change nothing.
func TestMigrations(t *testing.T) {
	fresh := databases(t)

	t.Run("FromEmpty", func(t *testing.T) {
		dsn := fresh(t)
		s, err := Open(bg, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		steps := appliedSteps(t, dsn)
		if len(steps) != len(migrations) {
			t.Fatalf("schema_migrations holds %d steps after opening an empty database, want %d", len(steps), len(migrations))
		}
		for _, table := range []string{"devices", "enrolment_codes", "users", "sessions", "sign_in_links",
			"uploads", "instances", "quarantine", "studies", "study_instances", "hub_authority", "audit_trail", "box_reports", "live_sessions"} {
			var n int
			if err := s.pool.QueryRow(bg, `SELECT count(*) FROM `+table).Scan(&n); err != nil || n != 0 {
				t.Fatalf("table %s after migrating from empty: %d rows, %v", table, n, err)
			}
		}
	})

	t.Run("ReopenIsNoOp", func(t *testing.T) {
		dsn := fresh(t)
		s, err := Open(bg, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.IssueCode(bg, hubstate.EnrolmentCode{Hash: "h", Device: "AMB-1", Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		before := appliedSteps(t, dsn)
		s, err = Open(bg, dsn)
		if err != nil {
			t.Fatalf("re-open an up-to-date database: %v", err)
		}
		defer s.Close()
		after := appliedSteps(t, dsn)
		if len(after) != len(before) {
			t.Fatalf("re-opening applied steps again: %v, then %v", before, after)
		}
		for v, at := range before {
			if !after[v].Equal(at) {
				t.Fatalf("re-opening re-applied step %d (at %v, then %v)", v, at, after[v])
			}
		}
		if d, err := s.Device(bg, "AMB-1"); err != nil || d.State != hubstate.StatePending {
			t.Fatalf("device after re-opening: %+v, %v", d, err)
		}
	})

	t.Run("FromVersion1", func(t *testing.T) {
		dsn := fresh(t)
		s, err := open(bg, dsn, 1)
		if err != nil {
			t.Fatal(err)
		}
		// Version 1 holds the registry and the accounts, and no studies yet.
		if _, err := s.Upload(bg, "u1"); err == nil || errors.Is(err, hubstate.ErrNotFound) {
			t.Fatalf("read an upload at version 1: %v, want the missing table's error", err)
		}
		writeVersion1State(t, s)
		s.Close()

		s, err = Open(bg, dsn)
		if err != nil {
			t.Fatalf("migrate from version 1: %v", err)
		}
		defer s.Close()
		if steps := appliedSteps(t, dsn); len(steps) != len(migrations) {
			t.Fatalf("%d steps applied after migrating from version 1, want %d", len(steps), len(migrations))
		}
		checkVersion1State(t, s)
		// And version 2's part works on the migrated database.
		u := hubstate.Upload{ID: "u1", Device: "AMB-1", SOPInstanceUID: "1.2.3.4", StudyUID: "1.2.3", Length: 10, SHA256: "aa"}
		if _, err := s.CreateUpload(bg, u); err != nil {
			t.Fatalf("create an upload after migrating: %v", err)
		}
		if got, err := s.AdvanceUpload(bg, "u1", 0, 10); err != nil || got.Offset != 10 {
			t.Fatalf("advance an upload after migrating: %+v, %v", got, err)
		}
	})

	t.Run("FromVersion2", func(t *testing.T) {
		dsn := fresh(t)
		s, err := open(bg, dsn, 2)
		if err != nil {
			t.Fatal(err)
		}
		// Version 2 has no shared audit trail yet.
		if err := s.AppendAudit(bg, "x", []byte(`{"time":"2026-03-01T08:00:00Z","event":"x"}`)); err == nil {
			t.Fatal("appended to the audit trail at version 2; want the missing table's error")
		}
		writeVersion1State(t, s)
		u := hubstate.Upload{ID: "u1", Device: "AMB-1", SOPInstanceUID: "1.2.3.4", StudyUID: "1.2.3", Length: 10, SHA256: "aa"}
		if _, err := s.CreateUpload(bg, u); err != nil {
			t.Fatal(err)
		}
		s.Close()

		s, err = Open(bg, dsn)
		if err != nil {
			t.Fatalf("migrate from version 2: %v", err)
		}
		defer s.Close()
		checkVersion1State(t, s)
		if got, err := s.Upload(bg, "u1"); err != nil || got.Length != 10 {
			t.Fatalf("upload after migrating from version 2: %+v, %v", got, err)
		}
		if err := s.AdoptAuthority(bg, "PIN1"); err != nil {
			t.Fatalf("adopt an authority after migrating: %v", err)
		}
		if err := s.AppendAudit(bg, "x", []byte(`{"time":"2026-03-01T08:00:00Z","event":"x"}`)); err != nil {
			t.Fatalf("append to the audit trail after migrating: %v", err)
		}
	})

	t.Run("FromVersion3", func(t *testing.T) {
		dsn := fresh(t)
		s, err := open(bg, dsn, 3)
		if err != nil {
			t.Fatal(err)
		}
		// Version 3 keeps no archive per instance; what it archived was owed by the
		// one hub there was.
		if _, _, err := s.InArchive("x").DueDeliveries(bg, time.Now(), 10); err == nil {
			t.Fatal("read deliveries by archive at version 3; want the missing column's error")
		}
		if _, err := s.pool.Exec(bg, `INSERT INTO instances (sop_instance_uid, study_uid, device, size, sha256, path, owed)
			VALUES ('1.2.3.4', '1.2.3', 'AMB-1', 4, 'aa', '/archive/1.2.3.4', true)`); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err = Open(bg, dsn)
		if err != nil {
			t.Fatalf("migrate from version 3: %v", err)
		}
		defer s.Close()
		if got, pending := dueSOPs(t, s.InArchive("hub-a")); len(got) != 1 || pending != 1 {
			t.Fatalf("an instance archived at version 3 is offered to a hub as %v of %d owed, want it offered", got, pending)
		}
	})

	t.Run("NewerSchemaRefused", func(t *testing.T) {
		dsn := fresh(t)
		s, err := Open(bg, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.pool.Exec(bg, `INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')`); err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err = Open(bg, dsn)
		if err == nil || !strings.Contains(err.Error(), "version 99") {
			t.Fatalf("open a database of a newer release: %v, want a refusal naming version 99", err)
		}
		t.Logf("the operator reads: %v", err)
	})

	t.Run("HubsStartingTogether", func(t *testing.T) {
		dsn := fresh(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				s, err := Open(bg, dsn)
				if err == nil {
					s.Close()
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("a hub starting beside others on an empty database: %v", err)
			}
		}
		if steps := appliedSteps(t, dsn); len(steps) != len(migrations) {
			t.Fatalf("%d steps recorded after four hubs migrated at once, want %d", len(steps), len(migrations))
		}
	})
}

// writeVersion1State writes what a hub of schema version 1 keeps: an enrolled and a
// pending device, a user with a session and a sign-in link.
func writeVersion1State(t *testing.T, s *Store) {
	t.Helper()
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, c := range []hubstate.EnrolmentCode{{Hash: "h1", Device: "AMB-1", Expires: at.Add(time.Hour)}, {Hash: "h2", Device: "AMB-2", Expires: at.Add(time.Hour)}} {
		if err := s.IssueCode(bg, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RedeemCode(bg, "h1", at, func(string) (hubstate.Certificate, error) {
		return hubstate.Certificate{Serial: "0a", NotAfter: at.AddDate(1, 0, 0)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(bg, hubstate.User{ID: "dr.li", Name: "李医生", Role: "doctor", PasswordHash: "x", Created: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(bg, hubstate.Session{Hash: "s1", User: "dr.li", Created: at, LastUsed: at}, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.IssueSignInLink(bg, hubstate.SignInLink{Hash: "k1", User: "dr.li", Expires: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
}

func checkVersion1State(t *testing.T, s *Store) {
	t.Helper()
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	if d, err := s.Device(bg, "AMB-1"); err != nil || d.State != hubstate.StateActive || d.Serial != "0a" {
		t.Fatalf("enrolled device after migrating: %+v, %v", d, err)
	}
	if d, err := s.Device(bg, "AMB-2"); err != nil || d.State != hubstate.StatePending {
		t.Fatalf("pending device after migrating: %+v, %v", d, err)
	}
	if _, err := s.RedeemCode(bg, "h1", at, nil); !errors.Is(err, hubstate.ErrCodeUsed) {
		t.Fatalf("used code after migrating: %v", err)
	}
	if u, err := s.User(bg, "dr.li"); err != nil || u.Name != "李医生" {
		t.Fatalf("user after migrating: %+v, %v", u, err)
	}
	if _, err := s.Session(bg, "s1"); err != nil {
		t.Fatalf("session after migrating: %v", err)
	}
	if id, err := s.RedeemSignInLink(bg, "k1", at); err != nil || id != "dr.li" {
		t.Fatalf("sign-in link after migrating: %q, %v", id, err)
	}
}

// TestUnreachableDatabaseSaysWhere opens a database nobody serves: the error names
// the host and port, for the operator reading the hub's log.
func TestUnreachableDatabaseSaysWhere(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the port is now one nobody listens on
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	_, err = Open(ctx, "postgres://lifeline@"+addr+"/hub?sslmode=disable")
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "pgstate") {
		t.Fatalf("open a database nobody serves: %v, want an error naming pgstate and %s", err, addr)
	}
	t.Logf("the operator reads: %v", err)
}

// TestMalformedDSNKeepsThePassword gives Open a connection string it cannot parse:
// the refusal must not repeat the password, which may end up in a journal.
func TestMalformedDSNKeepsThePassword(t *testing.T) {
	for _, dsn := range []string{"postgres://hub:s3cret-pw@db:port/lifeline", "host=db password=s3cret-pw port=x"} {
		err := Check(dsn)
		if err == nil {
			t.Fatalf("Check(%q) accepted it", dsn)
		}
		if _, openErr := Open(bg, dsn); openErr == nil || strings.Contains(openErr.Error(), "s3cret") || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("refusals of a malformed string: %v / %v; want refusals without the password", err, openErr)
		}
	}
	if err := Check("postgres://hub@db.example:5432/lifeline"); err != nil {
		t.Fatalf("a good connection string refused: %v", err)
	}
}
