// Package boltstate is the hub's embedded state engine: hubstate.Store on one bbolt
// file (through internal/durable), for a hub that runs as one process on one machine.
//
// Every write is one bbolt transaction, fsynced when it commits, so each
// hubstate method is atomic and durable when it returns. bbolt runs one writer at a
// time, which is what makes "exactly once" hold here without further locking.
//
// Records are stored as JSON in the buckets the hub used before this package existed,
// so a hub's existing hub.db is read as it is; study records, which are now kept per
// box, are moved to their box's key when the file is opened.
package boltstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/hubstate"
)

// Buckets of the hub's store.
const (
	bucketDevices   = "trust/devices"      // device ID → hubstate.Device
	bucketCodes     = "trust/codes"        // hex SHA-256 of a code's secret → codeRecord
	bucketUploads   = "transfer/uploads"   // upload ID → hubstate.Upload
	bucketInstances = "transfer/instances" // SOP Instance UID → hubstate.Instance
	bucketStudies   = "transfer/studies"   // studyKey(Study Instance UID, device) → hubstate.Study
	// bucketQuarantine holds verified copies whose SOP Instance UID the archive holds
	// with other content: quarantineKey(SOP Instance UID, device, SHA-256) → hubstate.Instance.
	bucketQuarantine = "transfer/quarantine"
	bucketDelivery   = "transfer/delivery" // SOP Instance UID → "" while a PACS delivery is owed
)

// Store is hubstate.Store on bbolt.
type Store struct {
	db *durable.Store
}

var _ hubstate.Store = (*Store)(nil)

// Open opens (creating if needed) the state in the file at path. It waits at most
// lockWait (zero: 1 s) for another process to let go of the file, then fails with an
// error that matches hubstate.ErrHeld.
func Open(path string, lockWait time.Duration) (*Store, error) {
	db, err := durable.Open(path, lockWait)
	if errors.Is(err, durable.ErrLocked) {
		return nil, fmt.Errorf("%w: %w", hubstate.ErrHeld, err)
	}
	if err != nil {
		return nil, err
	}
	if err := migrateStudies(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstate: %s: scope study records to their box: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

// update runs fn in one write transaction unless ctx is already done.
func (s *Store) update(ctx context.Context, fn func(tx *durable.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// group runs fn in a write transaction shared with the other callers waiting at the
// same moment (durable.Store.Group): one commit for all the chunks that several boxes'
// uploads append at once. fn may run more than once, so it resets what it captures.
func (s *Store) group(ctx context.Context, fn func(tx *durable.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Group(fn)
}

// view runs fn in one read transaction unless ctx is already done.
func (s *Store) view(ctx context.Context, fn func(tx *durable.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// del removes key; a missing bucket or key is not an error.
func del(tx *durable.Tx, bucket, key string) error {
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.Delete([]byte(key))
}

// each decodes every record of bucket in key order into a fresh T and calls fn.
func each[T any](tx *durable.Tx, bucket string, fn func(key string, v T) error) error {
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("boltstate: stored %s/%s: %w", bucket, k, err)
		}
		return fn(string(k), v)
	})
}
