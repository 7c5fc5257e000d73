package hubstate

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Shared is what an engine that several hubs share offers beside Store: whether the
// shared state answers, one certificate authority for every hub on it, and the
// shared audit trail. The embedded engine, which one hub holds alone, does not offer
// it; a hub asks its Store for it with a type assertion and, finding none, runs alone
// as before.
type Shared interface {
	// Ping reports whether the shared state answers now.
	Ping(ctx context.Context) error
	// Where names the shared state for an operator (engine, user, host, port,
	// database), never with a password.
	Where() string
	// AdoptAuthority records fingerprint as the certificate authority of every hub
	// on this state when none is recorded yet, and otherwise checks that it is the
	// recorded one, refusing another with ErrOtherAuthority: hubs on one state must
	// trust the same box certificates and sign with the same key, or a box enrolled
	// at one would be refused by the next.
	AdoptAuthority(ctx context.Context, fingerprint string) error
	// AppendAudit appends one audit line (a JSON object with "time", "event" and
	// "host", as package audit writes it) to the shared audit trail and returns once
	// it is committed. The trail is append-only: no hub changes or removes a line.
	AppendAudit(ctx context.Context, event string, line []byte) error
	// AuditTrail returns up to limit lines of the trail after sequence number after,
	// oldest first.
	AuditTrail(ctx context.Context, after int64, limit int) ([]AuditLine, error)
	// PutBoxReport keeps r as its device's latest report, replacing the one before,
	// so that every hub's board shows every box whichever hub it reports to.
	PutBoxReport(ctx context.Context, r BoxReport) error
	// BoxReports lists the latest report of every box, in device order.
	BoxReports(ctx context.Context) ([]BoxReport, error)
	// MarkLive records that hub, whose viewers connect at viewerURL, holds at at the
	// live sessions of devices, so that the other hubs can send a viewer there.
	MarkLive(ctx context.Context, hub, viewerURL string, devices []string, at time.Time) error
	// LiveAt returns the last mark of device's live session; ErrNotFound if no hub
	// ever marked one.
	LiveAt(ctx context.Context, device string) (LiveSession, error)
	// LiveSessions lists the marks made at since or later, in device order.
	LiveSessions(ctx context.Context, since time.Time) ([]LiveSession, error)
	// AdoptViewerKey records fingerprint as that of the key every hub on this state
	// signs viewer tokens with, when none is recorded yet, and otherwise checks that
	// it is the recorded one, refusing another with ErrOtherViewerKey: a token issued
	// at one hub must play at the hub that holds the box's session.
	AdoptViewerKey(ctx context.Context, fingerprint string) error
	// ViewerKey returns the recorded fingerprint of the viewer-token key; ErrNotFound
	// if no hub recorded one yet.
	ViewerKey(ctx context.Context) (string, error)
}

// LiveSession is a hub's mark that it holds a box's live session.
type LiveSession struct {
	Device string `json:"device"`
	Hub    string `json:"hub"` // the hub's name, as its board names it
	// ViewerURL is where that hub's viewers connect, e.g. "https://hub-a.example:8444";
	// empty when the hub did not say.
	ViewerURL string    `json:"viewer_url,omitempty"`
	At        time.Time `json:"at"` // that hub's clock when it last marked it
}

// BoxReport is a box's latest report (position, mission, link) as the hub that took
// it keeps it for the others: the report itself is the hub's business.
type BoxReport struct {
	Device string          `json:"device"`
	Hub    string          `json:"hub"` // the hub the box reported to
	At     time.Time       `json:"at"`  // that hub's clock when it arrived
	Report json.RawMessage `json:"report"`
}

// AuditLine is one line of the shared audit trail.
type AuditLine struct {
	Seq   int64           `json:"seq"`   // the trail's order, increasing
	Time  time.Time       `json:"time"`  // the line's own time
	Event string          `json:"event"` // e.g. "device.revoked"
	Host  string          `json:"host"`  // the machine that wrote it
	Line  json.RawMessage `json:"line"`  // the line as written
}

// ErrOtherAuthority says a hub's certificate authority is not the one the shared
// state was set up with.
var ErrOtherAuthority = errors.New("hubstate: this hub's certificate authority is not the one the shared state's other hubs use")

// ErrOtherViewerKey says a hub's viewer-token key is not the one the shared state's
// other hubs sign with.
var ErrOtherViewerKey = errors.New("hubstate: this hub's viewer-token key is not the one the shared state's other hubs use")
