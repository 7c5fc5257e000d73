package vitals

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"lifeline/internal/durable"
)

// The outbox's buckets in the box's store.
const (
	ringBucket = "stream/vitals/outbox"      // seq (8 bytes, big endian) → message JSON
	metaBucket = "stream/vitals/outbox-meta" // "meta" → ringMeta JSON
)

// reserveStep and waveReserveStep are how many sequence numbers each durable
// reservation covers. The box never sends a seq beyond what is reserved on disk, so
// after a power cut it resumes above anything it may have sent: a hub never takes a
// new message for a duplicate. A new block is reserved when half of one is used, so
// a slow disk must stall for half a block before anything waits: over a minute of a
// monitor's numerics, and about four minutes of a 12-lead stream's wave chunks (which
// are dropped, not delayed, when they cannot be numbered).
const (
	reserveStep     = 4096
	waveReserveStep = 1 << 16
)

// ringMeta is the ring's durable bookkeeping, rewritten in every group commit.
type ringMeta struct {
	Epoch        string `json:"epoch"`
	Reserved     uint64 `json:"reserved"`      // reliable seqs up to here may have been sent
	WaveReserved uint64 `json:"wave_reserved"` // wave seqs likewise
	Acked        uint64 `json:"acked"`         // the hub's cumulative ack
	Dropped      uint64 `json:"dropped"`       // unacknowledged messages pushed out by the bound
	ControlSeen  uint64 `json:"control_seen"`  // highest control seq handed to the crew
	// ControlGaps are control seqs below ControlSeen that have not arrived: a message
	// the hub could not send at first comes after later ones, and is still news.
	ControlGaps []uint64 `json:"control_gaps,omitempty"`
}

// entry is one reliable message in the ring.
type entry struct {
	seq  uint64
	data []byte
}

// ring is the bounded durable store of reliable messages. It is used by one Outbox,
// whose lock serialises commits; reads may run beside a commit (bbolt is MVCC).
type ring struct {
	store       *durable.Store
	maxMessages int
	maxBytes    int64

	// state mirrors what is committed, so that trimming needs no scan. Only the
	// Outbox's commit path writes it, under the Outbox's lock.
	state ringState
}

type ringState struct {
	count int
	bytes int64
	meta  ringMeta
}

// openRing loads the ring's state, creating its epoch on first use.
func openRing(store *durable.Store, maxMessages int, maxBytes int64) (*ring, error) {
	r := &ring{store: store, maxMessages: maxMessages, maxBytes: maxBytes}
	err := store.GetJSON(metaBucket, "meta", &r.state.meta)
	switch {
	case errors.Is(err, durable.ErrNotFound):
		var id [8]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, fmt.Errorf("vitals: outbox epoch: %w", err)
		}
		r.state.meta.Epoch = hex.EncodeToString(id[:])
	case err != nil:
		return nil, fmt.Errorf("vitals: outbox state: %w", err)
	}
	err = store.ForEach(ringBucket, func(_, v []byte) error {
		r.state.count++
		r.state.bytes += int64(len(v))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vitals: outbox ring: %w", err)
	}
	return r, nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// commit writes one group in a single transaction (one fsync): the new entries, the
// removal of everything acknowledged, the trim to the bound (oldest first, counted),
// and meta. It returns the state after the commit for the caller to install; on error
// nothing of it is applied.
func (r *ring) commit(add []entry, meta ringMeta) (st ringState, dropped uint64, err error) {
	count, bytes := r.state.count, r.state.bytes
	err = r.store.Update(func(tx *durable.Tx) error {
		b, err := durable.Bucket(tx, ringBucket)
		if err != nil {
			return err
		}
		for _, e := range add {
			if e.seq <= meta.Acked {
				continue // acknowledged before it was committed: nothing to keep
			}
			if err := b.Put(seqKey(e.seq), e.data); err != nil {
				return fmt.Errorf("vitals: outbox put %d: %w", e.seq, err)
			}
			count++
			bytes += int64(len(e.data))
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.First() {
			acked := binary.BigEndian.Uint64(k) <= meta.Acked
			if !acked && count <= r.maxMessages && bytes <= r.maxBytes {
				break
			}
			if !acked {
				dropped++
			}
			count--
			bytes -= int64(len(v))
			if err := c.Delete(); err != nil {
				return fmt.Errorf("vitals: outbox trim: %w", err)
			}
		}
		meta.Dropped += dropped
		m, err := durable.Bucket(tx, metaBucket)
		if err != nil {
			return err
		}
		data, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		return m.Put([]byte("meta"), data)
	})
	if err != nil {
		return r.state, 0, fmt.Errorf("vitals: outbox commit: %w", err)
	}
	return ringState{count: count, bytes: bytes, meta: meta}, dropped, nil
}

// readFrom returns up to n committed entries with seq >= from, in order.
func (r *ring) readFrom(from uint64, n int) ([]entry, error) {
	var out []entry
	err := r.store.View(func(tx *durable.Tx) error {
		b := tx.Bucket([]byte(ringBucket))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(from)); k != nil && len(out) < n; k, v = c.Next() {
			out = append(out, entry{seq: binary.BigEndian.Uint64(k), data: append([]byte(nil), v...)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vitals: outbox read from %d: %w", from, err)
	}
	return out, nil
}
