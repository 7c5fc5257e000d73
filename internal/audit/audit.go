// Package audit writes the hub's audit trail: one JSON object per line, appended and
// fsynced before the audited action is answered, so that every access to patient data
// and every security decision can be traced later. Any log shipper can carry the file
// to a central store.
package audit

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Log is an append-only audit file. It is safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	log  *slog.Logger
	host string
}

// Open opens (creating if needed) the audit file at path for appending.
func Open(path string, log *slog.Logger) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	host, _ := os.Hostname()
	return &Log{f: f, log: log, host: host}, nil
}

// Audit appends one event. The line holds "time", "event", "host" and the given
// fields. Should the write fail, the event still reaches the process log, marked as
// not audited, so that the failure itself is visible to the operator.
func (l *Log) Audit(event string, fields map[string]any) {
	rec := make(map[string]any, len(fields)+3)
	for k, v := range fields {
		rec[k] = v
	}
	rec["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	rec["event"] = event
	rec["host"] = l.host
	line, err := json.Marshal(rec)
	if err != nil {
		line, _ = json.Marshal(map[string]any{"time": rec["time"], "event": event, "host": l.host, "encoding_error": err.Error()})
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(line); err != nil {
		l.log.Error("audit log write failed; event not audited", "event", event, "err", err)
		return
	}
	if err := l.f.Sync(); err != nil {
		l.log.Error("audit log fsync failed; event may be lost", "event", event, "err", err)
	}
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
