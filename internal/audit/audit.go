// Package audit writes the hub's audit trail: one JSON object per line, appended and
// fsynced before the audited action is answered, so that every access to patient data
// and every security decision can be traced later. Any log shipper can carry the file
// to a central store.
//
// Two ways to write, for two kinds of event:
//
//   - Record is for security actions: issuing an enrolment code, enrolling or revoking
//     a box, signing in, changing an account, handing out a viewer token. It returns
//     an error when the line is not durable, and the caller must then not act (fail
//     closed): an action nobody can trace later must not happen.
//   - Audit is for observations of what already happened and cannot be undone by
//     refusing (a box connected, a refusal, a study verified). A failure is reported in
//     the process log, marked as not audited, and the caller carries on.
//   - Repeats is for observations a stranger can repeat at will (wrong enrolment
//     codes, refused sign-ins): the first from a source is audited at once, the rest
//     as one summary line per source and interval, so a flood cannot fill the disk.
//
// Hubs that share their state also share their trail: AlsoTo sends every line to a
// shared append-only table as well as to the file, and a security action is then
// refused unless both took its line (shared.go).
//
// A failed write never leaves a torn line: the file is cut back to where the line
// began, so the next event starts on a line of its own. Should even that fail, the log
// refuses every later Record until the hub restarts, rather than glue events together.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// File is what Log writes to; *os.File is one. Tests of a failing disk supply another.
type File interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Seek(offset int64, whence int) (int64, error)
	Close() error
}

// Log is an append-only audit file. It is safe for concurrent use.
type Log struct {
	table  *table // the shared table beside the file (shared.go); nil: the file only
	mu     sync.Mutex
	f      File
	path   string
	broken error // set when a torn line could not be cut away
	log    *slog.Logger
	host   string
}

// Open opens (creating if needed) the audit file at path for appending.
func Open(path string, log *slog.Logger) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	return New(f, path, log), nil
}

// New returns a Log appending to f, which is named path in errors. f must be opened
// for appending (O_APPEND), so that every line goes to its end.
func New(f File, path string, log *slog.Logger) *Log {
	host, _ := os.Hostname()
	return &Log{f: f, path: path, log: log, host: host}
}

// Record appends one event for a security action and returns once the line is on
// stable storage. On an error the line is not in the file, and the caller must not
// carry out the action. The line holds "time", "event", "host" and the given fields.
//
// With a shared table (AlsoTo), the line must reach the table as well: should it
// not, Record returns an error and the caller must not act, and the file says, in a
// line of its own, that the event did not reach the table.
func (l *Log) Record(event string, fields map[string]any) error {
	line := encode(event, fields, l.host)
	if err := l.writeFile(event, line); err != nil {
		return err
	}
	return l.share(event, line, true)
}

// writeFile appends line to the file and returns once it is on stable storage.
func (l *Log) writeFile(event string, line []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return l.broken
	}
	// Where the line begins, asked afresh: an administration command may have
	// appended while no hub ran.
	start, err := l.f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("audit: %s: event %s not written: find the file's end: %w", l.path, event, err)
	}
	n, err := l.f.Write(line)
	if err == nil && n < len(line) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		l.cutTornLine(start)
		return fmt.Errorf("audit: %s: event %s not durable: %w", l.path, event, err)
	}
	return nil
}

// Audit appends one event that records an observation. Should the write fail, the
// event still reaches the process log, marked as not audited, so that the failure
// itself is visible to the operator; the caller is not told.
func (l *Log) Audit(event string, fields map[string]any) {
	line := encode(event, fields, l.host)
	if err := l.writeFile(event, line); err != nil {
		l.log.Error("audit log write failed; event not audited", "event", event, "fields", fields, "err", err)
	}
	if err := l.share(event, line, false); err != nil {
		l.log.Error("audit event is in the local file only", "event", event, "fields", fields, "err", err)
	}
}

// cutTornLine removes whatever part of a failed line reached the file (a full disk
// may take half of it), so that the next event does not continue it.
func (l *Log) cutTornLine(start int64) {
	if err := l.f.Truncate(start); err != nil {
		l.broken = fmt.Errorf("audit: %s: a failed line could not be cut away (%w); refusing further events until restart", l.path, err)
		l.log.Error("audit log is broken", "path", l.path, "err", err)
		return
	}
	if err := l.f.Sync(); err != nil {
		l.log.Warn("audit log: fsync after cutting a torn line failed", "path", l.path, "err", err)
	}
}

// encode makes the line for one event; a field that cannot be encoded is named in
// the line rather than losing the event.
func encode(event string, fields map[string]any, host string) []byte {
	rec := make(map[string]any, len(fields)+3)
	for k, v := range fields {
		rec[k] = v
	}
	rec["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	rec["event"] = event
	rec["host"] = host
	line, err := json.Marshal(rec)
	if err != nil {
		line, _ = json.Marshal(map[string]any{"time": rec["time"], "event": event, "host": host, "encoding_error": err.Error()})
	}
	return append(line, '\n')
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: log is closed")

// Close closes the file; later Records fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken == ErrClosed {
		return nil
	}
	l.broken = ErrClosed
	return l.f.Close()
}
