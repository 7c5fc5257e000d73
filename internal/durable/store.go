// Package durable keeps the state that must survive a power cut: small key/value
// indexes and FIFO queues on bbolt, and whole files written so that a crash leaves
// either the old file or the new one, never a torn one.
//
// Every write method returns only after the data is on stable storage (bbolt fsyncs
// each committed transaction; files are fsynced and renamed, and their directory is
// fsynced). Callers acknowledge to their peers only after such a method returns.
//
// The box's packages use Store, its transactions and queues directly. The hub does
// not: its state goes through the interface in internal/hubstate, whose embedded
// engine (hubstate/boltstate) is the only hub code that sees a Tx.
package durable

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrNotFound is returned by Get and GetJSON when the key is absent.
var ErrNotFound = errors.New("durable: not found")

// ErrLocked is returned by Open when another process holds the store.
var ErrLocked = errors.New("durable: store is held by another process")

// Store is a bbolt database opened for one process. It is safe for concurrent use.
type Store struct {
	db    *bolt.DB
	path  string
	group groupCommit
}

// Tx is a read or read-write transaction; see bbolt.Tx.
type Tx = bolt.Tx

// Open opens (creating if needed) the store at path. It waits at most lockWait for
// another process to release the file, then returns ErrLocked. A zero lockWait means
// 1 s, so that a second process fails fast instead of hanging.
func Open(path string, lockWait time.Duration) (*Store, error) {
	if lockWait <= 0 {
		lockWait = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("durable: create directory for %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("durable: open %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Path returns the file the store lives in.
func (s *Store) Path() string { return s.path }

// Close releases the store.
func (s *Store) Close() error { return s.db.Close() }

// Update runs fn in a read-write transaction, committed (and fsynced) if fn returns nil.
func (s *Store) Update(fn func(tx *Tx) error) error { return s.db.Update(fn) }

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error { return s.db.View(fn) }

// Bucket returns the named top-level bucket in a read-write transaction, creating it.
func Bucket(tx *Tx, name string) (*bolt.Bucket, error) {
	b, err := tx.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("durable: bucket %q: %w", name, err)
	}
	return b, nil
}

// Put stores value under key in bucket.
func (s *Store) Put(bucket string, key, value []byte) error {
	return s.Update(func(tx *Tx) error {
		b, err := Bucket(tx, bucket)
		if err != nil {
			return err
		}
		return b.Put(key, value)
	})
}

// Get returns a copy of the value under key in bucket, or ErrNotFound.
func (s *Store) Get(bucket string, key []byte) ([]byte, error) {
	var out []byte
	err := s.View(func(tx *Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return ErrNotFound
		}
		v := b.Get(key)
		if v == nil {
			return ErrNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// Delete removes key from bucket; a missing key is not an error.
func (s *Store) Delete(bucket string, key []byte) error {
	return s.Update(func(tx *Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.Delete(key)
	})
}

// ForEach calls fn for every key in bucket in key order. The slices are valid only
// during the call.
func (s *Store) ForEach(bucket string, fn func(key, value []byte) error) error {
	return s.View(func(tx *Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(fn)
	})
}

// PutJSON stores v as JSON under key in bucket.
func (s *Store) PutJSON(bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("durable: encode %s/%s: %w", bucket, key, err)
	}
	return s.Put(bucket, []byte(key), data)
}

// GetJSON decodes the JSON value under key in bucket into v, or returns ErrNotFound.
func (s *Store) GetJSON(bucket, key string, v any) error {
	data, err := s.Get(bucket, []byte(key))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("durable: decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

// GetJSONTx decodes the JSON record under key in bucket, inside tx, into v, and
// reports whether there was one.
func GetJSONTx(tx *Tx, bucket, key string, v any) (bool, error) {
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		return false, nil
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("durable: decode %s/%s: %w", bucket, key, err)
	}
	return true, nil
}

// PutJSONTx stores v as JSON under key in bucket, inside the read-write tx.
func PutJSONTx(tx *Tx, bucket, key string, v any) error {
	b, err := Bucket(tx, bucket)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("durable: encode %s/%s: %w", bucket, key, err)
	}
	return b.Put([]byte(key), raw)
}
