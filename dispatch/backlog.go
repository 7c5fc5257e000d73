package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"lifeline/internal/durable"
)

// DefaultMaxBacklog bounds the blind-zone store: 24 hours of 1 s reports. Each is a
// 0x0200 body of about 40 bytes, so the bound is a few megabytes of bbolt file. When
// full, the oldest report is dropped (and counted): the platform wants the recent
// track more than the day-old one.
const DefaultMaxBacklog = 86400

const (
	backlogQueue = "dispatch-reports"
	metaBucket   = "dispatch"
	markKey      = "last-report"
)

// reportMark is the last report made, kept with it in one transaction so that a box
// restarted after a power cut neither repeats it nor loses the turn detection.
type reportMark struct {
	Time   time.Time `json:"time"`
	Course float64   `json:"course"`
	Lat    float64   `json:"lat"`
	Lon    float64   `json:"lon"`
}

// Backlog is the durable FIFO of location reports the platform has not acknowledged.
// Every report goes in before it is sent, so none is lost across a power cut.
type Backlog struct {
	store *durable.Store
	q     *durable.Queue
	max   int

	mu      sync.Mutex
	n       int
	dropped int64
}

func openBacklog(store *durable.Store, max int) (*Backlog, error) {
	if max <= 0 {
		max = DefaultMaxBacklog
	}
	b := &Backlog{store: store, q: store.Queue(backlogQueue), max: max}
	n, err := b.q.Len()
	if err != nil {
		return nil, fmt.Errorf("dispatch: open blind-zone store %s: %w", store.Path(), err)
	}
	b.n = n
	return b, nil
}

// push stores a report body with the mark, dropping the oldest report when full.
func (b *Backlog) push(body []byte, mark reportMark) (uint64, error) {
	mb, err := json.Marshal(mark)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var seq uint64
	dropped := 0
	err = b.store.Update(func(tx *durable.Tx) error {
		var err error
		if seq, err = durable.PushTx(tx, b.q, body); err != nil {
			return err
		}
		if b.n+1 > b.max {
			if bk := tx.Bucket([]byte("queue/" + backlogQueue)); bk != nil {
				if k, _ := bk.Cursor().First(); k != nil {
					if err := bk.Delete(k); err != nil {
						return err
					}
					dropped = 1
				}
			}
		}
		meta, err := durable.Bucket(tx, metaBucket)
		if err != nil {
			return err
		}
		return meta.Put([]byte(markKey), mb)
	})
	if err != nil {
		return 0, fmt.Errorf("dispatch: store report: %w", err)
	}
	b.n += 1 - dropped
	b.dropped += int64(dropped)
	return seq, nil
}

// oldest returns up to n reports from the head.
func (b *Backlog) oldest(n int) ([]durable.Item, error) { return b.q.Peek(n) }

// ack removes acknowledged reports in one transaction.
func (b *Backlog) ack(seqs ...uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	removed := 0
	err := b.store.Update(func(tx *durable.Tx) error {
		bk := tx.Bucket([]byte("queue/" + backlogQueue))
		for _, s := range seqs {
			if bk != nil && bk.Get(seqBytes(s)) != nil {
				removed++
			}
			if err := durable.AckTx(tx, b.q, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dispatch: acknowledge reports: %w", err)
	}
	b.n -= removed
	return nil
}

func seqBytes(s uint64) []byte {
	return []byte{byte(s >> 56), byte(s >> 48), byte(s >> 40), byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// get returns the report with sequence seq, if it is still waiting.
func (b *Backlog) get(seq uint64) ([]byte, bool, error) {
	v, err := b.store.Get("queue/"+backlogQueue, seqBytes(seq))
	if errors.Is(err, durable.ErrNotFound) {
		return nil, false, nil
	}
	return v, err == nil, err
}

// Len is the number of reports waiting.
func (b *Backlog) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Dropped is how many reports were dropped because the backlog was full.
func (b *Backlog) Dropped() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

func (b *Backlog) lastMark() (reportMark, bool) {
	var m reportMark
	if err := b.store.GetJSON(metaBucket, markKey, &m); err != nil {
		return m, false
	}
	return m, true
}
