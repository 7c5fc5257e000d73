// Package pgstate is the hub's shared state engine: hubstate.Store on PostgreSQL
// (through pgx, pure Go), for several hub processes on several machines that share
// one database. It runs on the hub only; bbolt (boltstate) stays the embedded
// default for a hub that runs alone.
//
// Every hubstate method is one transaction at PostgreSQL's default isolation (read
// committed), and each "exactly once" of the interface rests on a lock that
// PostgreSQL holds across hubs rather than on one writer at a time: a code's row is
// locked (SELECT … FOR UPDATE) before it is judged and used; an upload's offset moves
// by one UPDATE … WHERE offset = from; a SOP Instance UID's primary key decides which
// copy is archived; and everything that recomputes a study's milestones first takes
// a transaction-level advisory lock on its Study Instance UID, so that two hubs
// archiving the last two instances of one study cannot both miss, or both announce,
// its being whole. A transaction that PostgreSQL aborts as a deadlock or a
// serialisation failure is run again, as hubstate allows.
//
// A write is committed, and with PostgreSQL's defaults (fsync, synchronous_commit)
// durable, when its method returns. Times are stored as timestamptz, which keeps
// microseconds: a time read back is the one written, rounded to the microsecond,
// and in UTC.
//
// The schema is created and brought forward when the state is opened (migrate.go),
// under a lock, so that hubs of one release may start together on an empty database.
//
// Each hub holds a pool of connections, sized by the connection string
// (pool_max_conns=N; pgx's default is the larger of 4 and the number of CPUs), so
// that a hub's concurrent requests share a few connections and many hubs stay within
// the database's max_connections.
package pgstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"lifeline/internal/hubstate"
)

// Store is hubstate.Store on PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	// trail is a pool of its own for the audit trail (shared.go): a hub audits from
	// inside a method's transaction (RedeemCode's issue), and with one pool the
	// transactions holding every connection would wait for a connection to audit on.
	trail *pgxpool.Pool
	// where names the database in errors, without the password.
	where string
	// archive names the archive whose files this hub holds (InArchive); empty: every
	// instance's file is reachable from here.
	archive string
	// hub names this hub in its claims on deliveries (ClaimingAs, claims.go).
	hub string
}

// InArchive returns the state as seen by a hub whose archived files are in the
// archive named name (e.g. its machine and archive directory): the instances it
// archives are marked as in that archive, and DueDeliveries offers it only the
// deliveries of its own archive and of instances in none, since another hub's files
// are on another machine. The returned Store shares s's connections; use one or the
// other.
func (s *Store) InArchive(name string) *Store {
	c := *s
	c.archive = name
	return &c
}

var _ hubstate.Store = (*Store)(nil)

// Open connects to the database that dsn names (a postgres:// URL or key=value
// string, as libpq takes), brings its schema up to this release's version, and
// returns the state. ctx bounds connecting and migrating only.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return open(ctx, dsn, len(migrations))
}

// Check reports whether dsn is a connection string Open can use, without connecting,
// so that a hub's configuration is refused at load time rather than at start. Its
// error never repeats the password.
func Check(dsn string) error {
	_, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's own message quotes the string with the password masked as best it
		// can, and a malformed string defeats the masking: say only what is wanted.
		return errors.New("not a PostgreSQL connection string such as postgres://lifeline@db.example:5432/lifeline (a password is best kept in ~/.pgpass)")
	}
	return nil
}

// open is Open with the schema brought to version upTo, so that tests can make a
// database of an earlier release.
func open(ctx context.Context, dsn string, upTo int) (*Store, error) {
	if err := Check(dsn); err != nil {
		return nil, fmt.Errorf("pgstate: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstate: %w", err)
	}
	where := fmt.Sprintf("postgres %s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstate: %s: %w", where, err)
	}
	if _, err := migrate(ctx, pool, upTo); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstate: %s: %w", where, err)
	}
	trailCfg := cfg.Copy()
	trailCfg.MaxConns, trailCfg.MinConns = trailConns, 0
	trail, err := pgxpool.NewWithConfig(ctx, trailCfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstate: %s: %w", where, err)
	}
	return &Store{pool: pool, trail: trail, where: where, hub: processName()}, nil
}

// trailConns is how many connections a hub keeps at most for its audit trail.
const trailConns = 2

// Close closes every connection to the database.
func (s *Store) Close() error {
	s.pool.Close()
	s.trail.Close()
	return nil
}

// retries is how many times a transaction PostgreSQL aborted to break a deadlock or
// a serialisation conflict is run again before its error is returned.
const retries = 5

// inTx runs fn in one transaction and commits it, running it again from the start
// when PostgreSQL aborted it to settle a conflict with another transaction. fn must
// therefore set its results afresh each time it runs.
func (s *Store) inTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	var err error
	for range retries {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if !retryable(err) {
			break
		}
	}
	return s.wrap(what, err)
}

// readTx runs fn in one read-only transaction that sees one snapshot, for reads that
// take several queries.
func (s *Store) readTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	return s.wrap(what, err)
}

// wrap says what failed and where for a failure of the database, and returns a
// refusal as it is, so that callers can test it with errors.Is and its text, which
// may reach a box, names nothing of the database.
func (s *Store) wrap(what string, err error) error {
	var r refusal
	switch {
	case err == nil:
		return nil
	case errors.As(err, &r):
		return r.err
	}
	return fmt.Errorf("pgstate: %s: %s: %w", s.where, what, err)
}

// refusal carries an error that is the answer itself rather than a failure of the
// database: one of hubstate's refusals, or the error of a caller's function.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// refuse marks err as the answer, to be returned as it is.
func refuse(err error) error { return refusal{err} }

// retryable reports whether PostgreSQL aborted a transaction to settle a conflict
// with another, so that running it again may succeed.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// isForeignKey reports whether err is a violated foreign key, i.e. a row names a
// user or device that does not exist.
func isForeignKey(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// ts is a time as stored: NULL for the zero time.
func ts(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// tm is a stored time as hubstate has it: the zero time for NULL, else in UTC.
func tm(p pgtype.Timestamptz) time.Time {
	if !p.Valid {
		return time.Time{}
	}
	return p.Time.UTC()
}

// collect reads every row with scan, one function for a single row and for many.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
}

// one reads the single row query selects, outside any transaction; none is
// notFound, returned as it is.
func one[T any](ctx context.Context, s *Store, what string, notFound error, scan func(pgx.Row) (T, error), query string, args ...any) (T, error) {
	v, err := scan(s.pool.QueryRow(ctx, query, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		var zero T
		return zero, notFound
	}
	return v, s.wrap(what, err)
}

// all reads every row query selects, outside any transaction.
func all[T any](ctx context.Context, s *Store, what string, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	vs, err := collect(rows, scan)
	return vs, s.wrap(what, err)
}
