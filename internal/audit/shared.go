package audit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Table is a shared, append-only home of audit lines beside the file, such as the
// database that several hubs share, so that one trail holds every hub's events.
type Table interface {
	// AppendAudit appends one line (as Log writes it to its file) and returns once
	// it is committed.
	AppendAudit(ctx context.Context, event string, line []byte) error
}

// TableConfig configures AlsoTo. Zero values mean the defaults.
type TableConfig struct {
	// Timeout bounds one append (default 5 s), so that a table that does not answer
	// delays a security action by that much and then refuses it.
	Timeout time.Duration
	// Rest is how long, after a failed append, observations skip the table and stay
	// in the file only (default 10 s), so that while the table is unreachable
	// observations are not each delayed by Timeout. Security actions always try.
	Rest time.Duration
}

// table is a Log's shared table and what it remembers of its last failure.
type table struct {
	to  Table
	cfg TableConfig

	mu       sync.Mutex
	failedAt time.Time
	lastErr  error
}

// AlsoTo makes every later event go to t as well as to the file: a security action
// (Record) whose line t does not take is refused, an observation (Audit) stays in
// the file and the process log says it is not in t. Call it before the log is used
// by several goroutines.
func (l *Log) AlsoTo(t Table, cfg TableConfig) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Rest <= 0 {
		cfg.Rest = 10 * time.Second
	}
	l.table = &table{to: t, cfg: cfg}
}

// share appends line to the shared table, if there is one. A security action's line
// that the table refuses is followed in the file by one saying so, so that the file
// does not show an action as done that was then refused.
func (l *Log) share(event string, line []byte, security bool) error {
	t := l.table
	if t == nil {
		return nil
	}
	if !security {
		if err := t.resting(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.Timeout)
	defer cancel()
	err := t.to.AppendAudit(ctx, event, line)
	t.note(err)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("audit: event %s is not in the shared audit trail: %w", event, err)
	if security {
		if ferr := l.writeFile("audit.not_shared", encode("audit.not_shared", map[string]any{"refused": event, "reason": err.Error()}, l.host)); ferr != nil {
			l.log.Error("audit log write failed; event not audited", "event", "audit.not_shared", "err", ferr)
		}
	}
	return err
}

// resting returns the last failure while observations skip the table after it.
func (t *table) resting() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastErr != nil && time.Since(t.failedAt) < t.cfg.Rest {
		return fmt.Errorf("the shared audit trail failed %s ago: %w", time.Since(t.failedAt).Round(time.Millisecond), t.lastErr)
	}
	return nil
}

// note remembers how the latest append went.
func (t *table) note(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastErr = err
	if err != nil {
		t.failedAt = time.Now()
	}
}

// TableAnswers tells the log that its table answers again, as its owner found out
// for itself, so that observations go to it from now on instead of after the rest.
func (l *Log) TableAnswers() {
	if t := l.table; t != nil {
		t.note(nil)
	}
}
