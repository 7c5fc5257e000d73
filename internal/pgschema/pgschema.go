// Package pgschema brings a PostgreSQL schema forward through versioned steps, for
// the hubs that share a database: steps are only ever appended, each is applied in
// a transaction of its own under an advisory lock, and the version is read again
// under the lock, so that of several hubs starting together against an empty
// database one applies each step and the others find it done. PostgreSQL's DDL is
// transactional: a step that fails leaves the database at the step before.
//
// Each package that owns tables in the database (the hub's state, the vitals
// history) has its own Schema: its own version table and lock, brought forward
// independently.
package pgschema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Step is one version of a schema.
type Step struct {
	Version int
	Name    string // what the step is for, recorded with it
	SQL     string
}

// Schema is one package's tables.
type Schema struct {
	What  string // for messages: "the hub's state"
	Table string // the version table, e.g. schema_migrations
	Lock  int64  // the advisory lock key under which the schema changes
	Steps []Step // in order, versions counting from 1 without gaps
}

// Check reports a build whose steps do not count from 1 without gaps, or a step
// without a name or SQL, before it touches a database.
func (s Schema) Check() error {
	for i, m := range s.Steps {
		switch {
		case m.Version != i+1:
			return fmt.Errorf("%s: schema step %d is missing from this build (the next is %d, %q)", s.What, i+1, m.Version, m.Name)
		case m.Name == "" || m.SQL == "":
			return fmt.Errorf("%s: schema step %d has no name or no SQL", s.What, m.Version)
		}
	}
	return nil
}

// Migrate brings the schema up to version upTo and returns the version the database
// is at. A database at a version newer than the build knows is refused.
func (s Schema) Migrate(ctx context.Context, pool *pgxpool.Pool, upTo int) (int, error) {
	if err := s.Check(); err != nil {
		return 0, err
	}
	for {
		at, done, err := s.step(ctx, pool, upTo)
		if err != nil || done {
			return at, err
		}
	}
}

// step applies the next step below upTo, if any, and says whether none was left.
func (s Schema) step(ctx context.Context, pool *pgxpool.Pool, upTo int) (at int, done bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.Lock); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.Table+` (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create %s: %w", s.Table, err)
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+s.Table).Scan(&at); err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if at > len(s.Steps) {
			return fmt.Errorf("the database's schema of %s is at version %d, newer than the %d this lifeline knows: run the newer lifeline, or a database of this release", s.What, at, len(s.Steps))
		}
		if at >= upTo {
			done = true
			return nil
		}
		m := s.Steps[at]
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate %s to version %d (%s): %w", s.What, m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.Table+` (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("record version %d: %w", m.Version, err)
		}
		at = m.Version
		return nil
	})
	return at, done, err
}
