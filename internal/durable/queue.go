package durable

import (
	"encoding/binary"
	"fmt"
)

// Queue is a persistent FIFO inside a Store. Items keep their place across restarts
// until they are acknowledged, so a consumer that crashes mid-item sees it again.
type Queue struct {
	store *Store
	name  string
}

// Item is one queued value with the sequence number that identifies it.
type Item struct {
	Seq   uint64
	Value []byte
}

// Queue returns the queue called name. Queues live in their own bucket, "queue/"+name.
func (s *Store) Queue(name string) *Queue { return &Queue{store: s, name: "queue/" + name} }

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// Push appends value and returns its sequence number once it is on disk.
func (q *Queue) Push(value []byte) (uint64, error) {
	var seq uint64
	err := q.store.Update(func(tx *Tx) error {
		var err error
		seq, err = PushTx(tx, q, value)
		return err
	})
	return seq, err
}

// PushTx appends value inside an existing read-write transaction, so that queueing
// can be atomic with an index update.
func PushTx(tx *Tx, q *Queue, value []byte) (uint64, error) {
	b, err := Bucket(tx, q.name)
	if err != nil {
		return 0, err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("durable: queue %s: %w", q.name, err)
	}
	return seq, b.Put(seqKey(seq), value)
}

// Peek returns up to n items from the head without removing them; n <= 0 means all.
func (q *Queue) Peek(n int) ([]Item, error) {
	var items []Item
	err := q.store.View(func(tx *Tx) error {
		b := tx.Bucket([]byte(q.name))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && (n <= 0 || len(items) < n); k, v = c.Next() {
			items = append(items, Item{Seq: binary.BigEndian.Uint64(k), Value: append([]byte(nil), v...)})
		}
		return nil
	})
	return items, err
}

// Ack removes the item with sequence number seq; acknowledging twice is harmless.
func (q *Queue) Ack(seq uint64) error {
	return q.store.Update(func(tx *Tx) error { return AckTx(tx, q, seq) })
}

// AckTx removes an item inside an existing read-write transaction.
func AckTx(tx *Tx, q *Queue, seq uint64) error {
	b := tx.Bucket([]byte(q.name))
	if b == nil {
		return nil
	}
	return b.Delete(seqKey(seq))
}

// Len returns the number of unacknowledged items.
func (q *Queue) Len() (int, error) {
	n := 0
	err := q.store.View(func(tx *Tx) error {
		if b := tx.Bucket([]byte(q.name)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n, err
}
