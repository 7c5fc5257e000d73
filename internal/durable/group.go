package durable

import (
	"fmt"
	"sync"
)

// Group commits the writes of concurrent callers in shared transactions: one fsync
// pair for every caller that arrived while the transaction before was committing.
// A caller alone commits at once, as Update does; there is no timer to wait on
// (bbolt's own Batch holds every transaction for up to 10 ms to gather others, which
// a lone chunk of an upload would pay on every request).
//
// fn may run more than once: when another caller's fn in the same transaction fails,
// the transaction is rolled back and run again without it. So fn must only write
// through tx and to variables it resets at its start.
//
// The caller that finds no transaction committing leads: it commits what is queued
// in one transaction and answers every caller in it. Whoever queued meanwhile is
// handed the lead by the first of them, so each caller commits at most one batch
// and no goroutine runs in the background.
func (s *Store) Group(fn func(tx *Tx) error) error {
	c := &groupCall{fn: fn, done: make(chan groupResult, 1)}
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.committing
	g.committing = true
	g.mu.Unlock()
	for {
		if lead {
			s.commitQueued()
		}
		r := <-c.done
		if !r.lead {
			return r.err
		}
		lead = true
	}
}

// groupCommit is the queue of Group's callers.
type groupCommit struct {
	mu         sync.Mutex
	queue      []*groupCall
	committing bool // a leader is committing; new callers queue for it
}

type groupCall struct {
	fn   func(tx *Tx) error
	done chan groupResult // one answer at a time: the lead, then the result
}

// groupResult answers a caller: its fn's outcome, or that it leads the next batch.
type groupResult struct {
	err  error
	lead bool
}

// commitQueued commits the queue in one transaction and answers every caller in it,
// then hands the lead to the first caller that queued meanwhile, if any.
func (s *Store) commitQueued() {
	g := &s.group
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()

	s.commitBatch(batch)

	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.committing = false
		return
	}
	g.queue[0].done <- groupResult{lead: true}
}

// commitBatch runs every call's fn in one transaction. A failing fn is answered with
// its error and dropped, and the rest run again in a fresh transaction, so a refusal
// (an offset that moved, a conflict) never costs the others their commit.
func (s *Store) commitBatch(batch []*groupCall) {
	for len(batch) > 0 {
		failed := -1
		var failure error
		err := s.db.Update(func(tx *Tx) error {
			for i, c := range batch {
				if err := safeCall(c.fn, tx); err != nil {
					failed, failure = i, err
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			// Committed for all of them, or the commit itself failed for all of them.
			for _, c := range batch {
				c.done <- groupResult{err: err}
			}
			return
		}
		batch[failed].done <- groupResult{err: failure}
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

// safeCall runs fn, turning a panic into an error so that one caller's bug does not
// leave the others in its batch waiting forever.
func safeCall(fn func(tx *Tx) error, tx *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("durable: group commit: %v", r)
		}
	}()
	return fn(tx)
}
