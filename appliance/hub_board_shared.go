package appliance

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"time"

	"lifeline/internal/hubstate"
)

// The boxes' board across hubs: a hub on a shared state keeps each report it takes in
// the state as well as in its memory, and lists every box of the state, so that the
// ED screen of any hub shows every ambulance whichever hub it reports to. Should the
// shared state not answer, the hub shows what it holds itself.

// boardTimeout bounds writing or reading the shared board, so that a box's report and
// the ED screen's board wait at most this long for a database that does not answer.
const boardTimeout = time.Second

// hubName is how the board names this hub: its first server name, or else its
// machine's, with its port for boxes.
func (h *Hub) hubName() string {
	host, _ := os.Hostname()
	if len(h.cfg.Server.Names) > 0 {
		host = h.cfg.Server.Names[0]
	}
	_, port, err := net.SplitHostPort(h.cfg.Server.Listen)
	if err != nil {
		return host
	}
	return net.JoinHostPort(host, port)
}

// shareBoxReport keeps a box's report in the shared state, if there is one. A report
// that does not get there is still on this hub's board, and the box's next report in
// two seconds tries again: the box is not refused for it.
func (h *Hub) shareBoxReport(ctx context.Context, s BoxSummary) {
	shared, ok := h.state.(hubstate.Shared)
	if !ok {
		return
	}
	report, err := json.Marshal(s.BoxReport)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, boardTimeout)
	defer cancel()
	if err := shared.PutBoxReport(ctx, hubstate.BoxReport{Device: s.Device, Hub: h.hubName(), At: s.LastContact, Report: report}); err != nil {
		h.log.Debug("box report not shared", "device", s.Device, "err", err)
	}
}

// sharedBoard is the board of every hub of the shared state, with this hub's own
// reports where they are newer (one that did not reach the state); without a shared
// state, or while it does not answer, this hub's own.
func (h *Hub) sharedBoard(ctx context.Context, own []BoxSummary) []BoxSummary {
	shared, ok := h.state.(hubstate.Shared)
	if !ok {
		return own
	}
	ctx, cancel := context.WithTimeout(ctx, boardTimeout)
	defer cancel()
	rows, err := shared.BoxReports(ctx)
	if err != nil {
		return own
	}
	me := h.hubName()
	byDevice := make(map[string]BoxSummary, len(rows))
	for _, r := range rows {
		s := BoxSummary{Device: r.Device, LastContact: r.At, Hub: r.Hub}
		if json.Unmarshal(r.Report, &s.BoxReport) != nil {
			continue
		}
		byDevice[r.Device] = s
	}
	for _, s := range own {
		if prev, ok := byDevice[s.Device]; !ok || s.LastContact.After(prev.LastContact) {
			s.Hub = me
			byDevice[s.Device] = s
		}
	}
	out := make([]BoxSummary, 0, len(byDevice))
	for _, s := range byDevice {
		out = append(out, s)
	}
	return out
}

// liveFresh is how old another hub's mark of a box's live session may be and still
// be believed: each hub marks its sessions every sharedCheckEvery.
const liveFresh = 5 * sharedCheckEvery

// publicViewerURL is where the other hubs send a doctor to watch a box that
// publishes here: viewer.public_url, or the viewer listener as bound.
func (h *Hub) publicViewerURL() string {
	if h.cfg.Viewer.PublicURL != "" {
		return h.cfg.PublicViewerURL()
	}
	return h.ViewerURL()
}

// markLive records in the shared state the live sessions this hub holds now, with
// where its viewers connect.
func (h *Hub) markLive(ctx context.Context, shared hubstate.Shared) error {
	if h.fanout == nil {
		return nil
	}
	var devices []string
	for _, s := range h.fanout.Status().Sessions {
		devices = append(devices, s.Device)
	}
	return shared.MarkLive(ctx, h.hubName(), h.publicViewerURL(), devices, time.Now())
}

// liveHere reports whether device publishes its live stream to this hub now.
func (h *Hub) liveHere(device string) bool {
	if h.fanout == nil {
		return false
	}
	for _, s := range h.fanout.Status().Sessions {
		if s.Device == device {
			return true
		}
	}
	return false
}

// liveElsewhere returns the mark of the other hub of the shared state to which
// device publishes its live stream; false when it publishes here, nowhere that the
// state knows of now, or without a shared state.
func (h *Hub) liveElsewhere(ctx context.Context, device string) (hubstate.LiveSession, bool) {
	shared, ok := h.state.(hubstate.Shared)
	if !ok || h.fanout == nil || h.liveHere(device) {
		return hubstate.LiveSession{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, boardTimeout)
	defer cancel()
	l, err := shared.LiveAt(ctx, device)
	if err != nil || l.Hub == h.hubName() || time.Since(l.At) > liveFresh {
		return hubstate.LiveSession{}, false
	}
	return l, true
}

// liveAtOthers maps each box that publishes to another hub of the shared state now to
// that hub's mark, for the board; empty without a shared state or while it does not
// answer.
func (h *Hub) liveAtOthers(ctx context.Context) map[string]hubstate.LiveSession {
	shared, ok := h.state.(hubstate.Shared)
	if !ok || h.fanout == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, boardTimeout)
	defer cancel()
	list, err := shared.LiveSessions(ctx, time.Now().Add(-liveFresh))
	if err != nil {
		return nil
	}
	here := map[string]bool{}
	for _, s := range h.fanout.Status().Sessions {
		here[s.Device] = true
	}
	me, out := h.hubName(), map[string]hubstate.LiveSession{}
	for _, l := range list {
		if l.Hub != me && !here[l.Device] {
			out[l.Device] = l
		}
	}
	return out
}
