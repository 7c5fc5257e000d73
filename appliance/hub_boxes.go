package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"lifeline/internal/trust"
)

// The hub's board of boxes: each box POSTs its BoxReport to BoxReportPath as itself
// (mutual TLS) every few seconds; the hub keeps the latest per box and lists them as
// BoxSummary on GET /api/v1/boxes (the viewer side behind sign-in, and the status
// listener for hospital IT's scripts) and to the ED screen through Hub.Boxes.
//
// The JSON field names below are an interface the ED board and scripts rely on:
// extend them, never rename them.

// Fix states of BoxReport.Fix: the GNSS receiver's state, or FixNone without one.
const (
	FixFixed     = "fixed"     // a valid fix no older than 3 s
	FixSearching = "searching" // the receiver talks, no fix since it started
	FixLost      = "lost"      // there was a fix, none for 3 s (a tunnel)
	FixSilent    = "silent"    // the receiver says nothing (unplugged)
	FixNone      = "none"      // the box has no GNSS receiver configured
)

// BoxReport is what a box says about itself: the body of its POST to the hub, and of
// GET /api/v1/position on the box.
type BoxReport struct {
	Time     time.Time    `json:"time"` // the box's clock when it made the report
	Fix      string       `json:"fix"`  // FixFixed, FixSearching, FixLost, FixSilent or FixNone
	Position *BoxPosition `json:"position,omitempty"`
	// SpeedKmh and HeadingDeg are over ground, from the last fix; HeadingDeg is
	// absent when the receiver gives no course (standing still).
	SpeedKmh    float64         `json:"speed_kmh"`
	HeadingDeg  *float64        `json:"heading_deg,omitempty"`
	Mission     BoxMission      `json:"mission"`
	Destination *BoxDestination `json:"destination,omitempty"`
	ETA         *BoxETA         `json:"eta,omitempty"`
	Link        *BoxLink        `json:"link,omitempty"` // absent without a modem or before its first poll
}

// BoxPosition is the last fix's point. Lat and Lon are in Datum, always "WGS-84" as
// the receiver gives it; a map of mainland China converts to GCJ-02 itself.
type BoxPosition struct {
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	Datum      string    `json:"datum"`
	Time       time.Time `json:"time"` // the fix's GNSS time
	Satellites int       `json:"satellites"`
	HDOP       float64   `json:"hdop,omitempty"`
}

// BoxMission is the mission's state ("available", "dispatched", "en route",
// "on scene", "transporting", "at hospital") and since when.
type BoxMission struct {
	State string    `json:"state"`
	Since time.Time `json:"since"`
}

// BoxDestination is where the ambulance is going (WGS-84).
type BoxDestination struct {
	Name string  `json:"name"`
	Lat  float64 `json:"lat"`
	Lon  float64 `json:"lon"`
}

// BoxETA is the estimated arrival at the destination: great-circle distance × 1.3 at
// the recent speed (SpeedAssumed: the ambulance is slower than 20 km/h and 20 is used).
type BoxETA struct {
	Arrival      time.Time `json:"arrival"`
	RemainingS   float64   `json:"remaining_s"`
	DistanceM    float64   `json:"distance_m"`
	SpeedKmh     float64   `json:"speed_kmh"`
	SpeedAssumed bool      `json:"speed_assumed"`
}

// BoxLink is the mobile link's quality at the modem's last poll. Technology is
// "NR5G-SA", "NR5G-NSA", "LTE" or whatever the module says ("" when unregistered);
// RSRP (dBm), RSRQ (dB) and SINR (dB) are absent when the module does not give them;
// Bars is 0–5 as a phone shows.
type BoxLink struct {
	Time       time.Time `json:"time"`
	Technology string    `json:"technology"`
	Operator   string    `json:"operator,omitempty"`
	Registered bool      `json:"registered"`
	RSRP       *float64  `json:"rsrp_dbm,omitempty"`
	RSRQ       *float64  `json:"rsrq_db,omitempty"`
	SINR       *float64  `json:"sinr_db,omitempty"`
	Bars       int       `json:"bars"`
}

// BoxSummary is one box on the hub's board: its latest report, when the hub received
// it, and whether the box publishes a live stream now.
type BoxSummary struct {
	Device      string    `json:"device"`       // the box's enrolled identity
	LastContact time.Time `json:"last_contact"` // the hub's clock when the report arrived
	Live        bool      `json:"live"`         // the box publishes its live stream to this hub
	// Hub names the hub the box reports to, when several hubs share their state
	// (docs/multi-hub.md); a box live at another hub is watched there.
	Hub string `json:"hub,omitempty"`
	BoxReport
}

// maxBoxReport bounds a box's report on the hub: a report is well under a kilobyte.
const maxBoxReport = 16 << 10

// boxBoard keeps the latest report of each box. Its zero value is ready.
type boxBoard struct {
	mu     sync.Mutex
	latest map[string]BoxSummary
}

func (b *boxBoard) put(s BoxSummary) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.latest == nil {
		b.latest = map[string]BoxSummary{}
	}
	b.latest[s.Device] = s
}

func (b *boxBoard) list() []BoxSummary {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]BoxSummary, 0, len(b.latest))
	for _, s := range b.latest {
		out = append(out, s)
	}
	return out
}

// Boxes lists every box that has reported since the hub started (with a shared state:
// to any hub of it), by device, with whether it is live here now. The ED screen's
// board reads it.
func (h *Hub) Boxes(ctx context.Context) ([]BoxSummary, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	live := map[string]bool{}
	if h.fanout != nil {
		for _, s := range h.fanout.Status().Sessions {
			live[s.Device] = true
		}
	}
	out := h.sharedBoard(ctx, h.boxes.list())
	for i := range out {
		out[i].Live = live[out[i].Device]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, nil
}

// mountBoxes serves the boxes' reports on the public side, and the board on the
// viewer side (signed-in staff) and on the status listener (loopback, for scripts).
func (h *Hub) mountBoxes(status *http.ServeMux) {
	h.mux.Handle("POST "+BoxReportPath, h.RequireDevice(http.HandlerFunc(h.receiveBoxReport)))
	board := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		boxes, err := h.Boxes(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, boxes)
	})
	h.HandleViewer("GET /api/v1/boxes", h.SignIn().Require()(board))
	status.Handle("GET /api/v1/boxes", board)
}

func (h *Hub) receiveBoxReport(w http.ResponseWriter, r *http.Request) {
	device, _ := trust.DeviceFrom(r.Context())
	var rep BoxReport
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBoxReport))
	if err := dec.Decode(&rep); err != nil {
		writeError(w, http.StatusBadRequest, "box report: "+err.Error())
		return
	}
	if err := rep.check(); err != nil {
		writeError(w, http.StatusBadRequest, "box report: "+err.Error())
		return
	}
	sum := BoxSummary{Device: device, LastContact: time.Now().UTC(), BoxReport: rep}
	h.boxes.put(sum)
	h.shareBoxReport(r.Context(), sum)
	w.WriteHeader(http.StatusNoContent)
}

// check refuses a report the board could not show truthfully.
func (r BoxReport) check() error {
	switch r.Fix {
	case FixFixed, FixSearching, FixLost, FixSilent, FixNone:
	default:
		return fmt.Errorf("fix %q is not one of fixed, searching, lost, silent, none", r.Fix)
	}
	if p := r.Position; p != nil {
		if p.Lat < -90 || p.Lat > 90 || p.Lon < -180 || p.Lon > 180 {
			return fmt.Errorf("position %g, %g is not a latitude and longitude", p.Lat, p.Lon)
		}
		if p.Datum != "WGS-84" {
			return fmt.Errorf("position in datum %q: the hub takes WGS-84", p.Datum)
		}
	}
	if r.Mission.State == "" {
		return fmt.Errorf("no mission state")
	}
	return nil
}
