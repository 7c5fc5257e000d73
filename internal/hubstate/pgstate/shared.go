package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"lifeline/internal/hubstate"
)

var _ hubstate.Shared = (*Store)(nil)

// Ping implements hubstate.Shared: one round trip on a pooled connection, which the
// pool opens afresh once the database is back after an outage.
func (s *Store) Ping(ctx context.Context) error {
	return s.wrap("ping", s.pool.Ping(ctx))
}

// Where implements hubstate.Shared.
func (s *Store) Where() string { return s.where }

// AdoptAuthority implements hubstate.Shared. The single row of hub_authority is
// inserted by the first hub; every later one, racing or not, reads what is there.
func (s *Store) AdoptAuthority(ctx context.Context, fingerprint string) error {
	return s.inTx(ctx, "adopt the hubs' certificate authority", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO hub_authority (fingerprint) VALUES ($1) ON CONFLICT (one) DO NOTHING`, fingerprint); err != nil {
			return err
		}
		var have string
		if err := tx.QueryRow(ctx, `SELECT fingerprint FROM hub_authority`).Scan(&have); err != nil {
			return err
		}
		if have != fingerprint {
			return refuse(fmt.Errorf("%w: it is %s, the others' is %s; copy ca/ca.key and ca/ca.crt from a hub of this state into this hub's data directory", hubstate.ErrOtherAuthority, fingerprint, have))
		}
		return nil
	})
}

// AppendAudit implements hubstate.Shared, on the trail's own connections, since it
// is called from inside other methods' transactions. The line's own time and host
// are kept as columns, so that the trail can be read by time and machine without
// parsing.
func (s *Store) AppendAudit(ctx context.Context, event string, line []byte) error {
	var head struct {
		Time time.Time `json:"time"`
		Host string    `json:"host"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return fmt.Errorf("pgstate: audit line for %s is not a JSON object with a time: %w", event, err)
	}
	if head.Time.IsZero() {
		return errors.New("pgstate: audit line for " + event + " has no time")
	}
	_, err := s.trail.Exec(ctx, `INSERT INTO audit_trail (at, event, host, line) VALUES ($1, $2, $3, $4)`,
		head.Time, event, head.Host, string(line))
	return s.wrap("append to the audit trail", err)
}

// AuditTrail implements hubstate.Shared.
func (s *Store) AuditTrail(ctx context.Context, after int64, limit int) ([]hubstate.AuditLine, error) {
	return all(ctx, s, "read the audit trail", func(r pgx.Row) (hubstate.AuditLine, error) {
		var l hubstate.AuditLine
		var line string
		err := r.Scan(&l.Seq, &l.Time, &l.Event, &l.Host, &line)
		l.Time, l.Line = l.Time.UTC(), json.RawMessage(line)
		return l, err
	}, `SELECT seq, at, event, host, line::text FROM audit_trail WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
}

// PutBoxReport implements hubstate.Shared: one upsert, the later report kept when two
// hubs write the same box's at once.
func (s *Store) PutBoxReport(ctx context.Context, r hubstate.BoxReport) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO box_reports (device, hub, at, report) VALUES ($1, $2, $3, $4)
		ON CONFLICT (device) DO UPDATE SET hub = excluded.hub, at = excluded.at, report = excluded.report
		WHERE box_reports.at <= excluded.at`, r.Device, r.Hub, r.At, string(r.Report))
	return s.wrap("keep the report of box "+r.Device, err)
}

// BoxReports implements hubstate.Shared.
func (s *Store) BoxReports(ctx context.Context) ([]hubstate.BoxReport, error) {
	return all(ctx, s, "read the boxes' reports", func(row pgx.Row) (hubstate.BoxReport, error) {
		var r hubstate.BoxReport
		var report string
		err := row.Scan(&r.Device, &r.Hub, &r.At, &report)
		r.At, r.Report = r.At.UTC(), json.RawMessage(report)
		return r, err
	}, `SELECT device, hub, at, report::text FROM box_reports ORDER BY device`)
}

// MarkLive implements hubstate.Shared: one upsert for all the hub's sessions, the
// later mark kept when two hubs claim one box (it moved between them).
func (s *Store) MarkLive(ctx context.Context, hub, viewerURL string, devices []string, at time.Time) error {
	if len(devices) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO live_sessions (device, hub, viewer_url, seen_at) SELECT d, $2, $3, $4 FROM unnest($1::text[]) AS d
		ON CONFLICT (device) DO UPDATE SET hub = excluded.hub, viewer_url = excluded.viewer_url, seen_at = excluded.seen_at
		WHERE live_sessions.seen_at <= excluded.seen_at`, devices, hub, viewerURL, at)
	return s.wrap("mark the live sessions of hub "+hub, err)
}

func scanLiveSession(r pgx.Row) (hubstate.LiveSession, error) {
	var l hubstate.LiveSession
	err := r.Scan(&l.Device, &l.Hub, &l.ViewerURL, &l.At)
	l.At = l.At.UTC()
	return l, err
}

// LiveAt implements hubstate.Shared.
func (s *Store) LiveAt(ctx context.Context, device string) (hubstate.LiveSession, error) {
	return one(ctx, s, "read the live session of "+device, fmt.Errorf("live session of %s: %w", device, hubstate.ErrNotFound),
		scanLiveSession, `SELECT device, hub, viewer_url, seen_at FROM live_sessions WHERE device = $1`, device)
}

// LiveSessions implements hubstate.Shared.
func (s *Store) LiveSessions(ctx context.Context, since time.Time) ([]hubstate.LiveSession, error) {
	return all(ctx, s, "read the live sessions", scanLiveSession,
		`SELECT device, hub, viewer_url, seen_at FROM live_sessions WHERE seen_at >= $1 ORDER BY device`, since)
}

// AdoptViewerKey implements hubstate.Shared, as AdoptAuthority does for the
// authority.
func (s *Store) AdoptViewerKey(ctx context.Context, fingerprint string) error {
	return s.inTx(ctx, "adopt the hubs' viewer-token key", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO hub_viewer_key (fingerprint) VALUES ($1) ON CONFLICT (one) DO NOTHING`, fingerprint); err != nil {
			return err
		}
		var have string
		if err := tx.QueryRow(ctx, `SELECT fingerprint FROM hub_viewer_key`).Scan(&have); err != nil {
			return err
		}
		if have != fingerprint {
			return refuse(fmt.Errorf("%w: it is %s, the others' is %s; copy viewer-token.key from a hub of this state into this hub's data directory", hubstate.ErrOtherViewerKey, fingerprint, have))
		}
		return nil
	})
}

// ViewerKey implements hubstate.Shared.
func (s *Store) ViewerKey(ctx context.Context) (string, error) {
	return one(ctx, s, "read the viewer-token key's fingerprint", fmt.Errorf("viewer-token key: %w", hubstate.ErrNotFound),
		func(r pgx.Row) (string, error) {
			var f string
			err := r.Scan(&f)
			return f, err
		}, `SELECT fingerprint FROM hub_viewer_key`)
}
