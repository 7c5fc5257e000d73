package appliance

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"time"

	"lifeline/internal/signin"
	"lifeline/stream/edscreen"
	"lifeline/stream/vitals"
)

// edPrefix is where the ED screen lives on the viewer side; a signed-in doctor who
// opens the hub's address lands there.
const edPrefix = "/ed"

// addEDScreen mounts the ED screen on the viewer side, behind sign-in, on the same
// origin as WHEP and the vitals history, which its content security policy requires.
func (h *Hub) addEDScreen() error {
	screen, err := edscreen.New(edscreen.Config{
		Boxes:          h.edBoxes,
		Prefix:         edPrefix,
		WHEPPattern:    hubWHEPPath + "/{device}",
		HistoryPattern: hubHistoryPath + "{device}/vitals",
		// A box at another hub of the shared state: the view hands the doctor over
		// to it (hub_viewer_handover.go).
		HandoverPattern: handoverPath + "{device}",
		Wrap:            h.gate.Require(viewerRoles...),
		CSRFToken: func(r *http.Request) string {
			v, _ := signin.ViewerFrom(r.Context())
			return v.CSRF
		},
		Crew: h.crew,
		Log:  h.log.With("service", "ed-screen"),
	})
	if err != nil {
		return err
	}
	h.HandleViewer(edPrefix+"/", screen.Handler())
	h.HandleViewer("POST "+handoverPath+"{device}", h.gate.Require(viewerRoles...)(http.HandlerFunc(h.handover)))
	h.HandleViewer("GET /{$}", http.RedirectHandler(edPrefix+"/", http.StatusSeeOther))
	return nil
}

// edBoxes is the board's list: every box that reports its position or publishes a
// live stream, here or at another hub of the shared state (named in Hub), with what
// dispatch and the stream know of it.
func (h *Hub) edBoxes(ctx context.Context) ([]edscreen.BoxSummary, error) {
	reports, err := h.Boxes(ctx)
	if err != nil {
		return nil, err
	}
	byDevice := map[string]*edscreen.BoxSummary{}
	for _, r := range reports {
		b := &edscreen.BoxSummary{Device: r.Device, Live: r.Live, LastContact: r.LastContact, Mission: edMission(r.Mission.State)}
		if r.ETA != nil {
			b.ETA = r.ETA.Arrival
		}
		if r.Link != nil {
			b.Link = &edscreen.Link{Quality: linkQuality(r.Link.Bars)}
		}
		byDevice[r.Device] = b
	}
	now := time.Now()
	for _, s := range h.fanout.Status().Sessions {
		b, ok := byDevice[s.Device]
		if !ok {
			b = &edscreen.BoxSummary{Device: s.Device}
			byDevice[s.Device] = b
		}
		b.Live, b.LastContact = true, now
		if b.Link == nil {
			b.Link = &edscreen.Link{Quality: edscreen.LinkGood}
		}
		b.Link.BitrateKbps = s.BitrateIn / 1000
	}
	for device, l := range h.liveAtOthers(ctx) {
		b, ok := byDevice[device]
		if !ok {
			b = &edscreen.BoxSummary{Device: device, LastContact: l.At}
			byDevice[device] = b
		}
		b.Live, b.Hub = true, l.Hub
	}
	out := make([]edscreen.BoxSummary, 0, len(byDevice))
	for _, b := range byDevice {
		if h.crew != nil {
			b.Patient = edPatient(h.crew.crew.Card(b.Device))
		}
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, nil
}

// edMission names a box's mission state as the ED screen does; a box that is
// available is on no mission the ED waits for.
func edMission(state string) string {
	switch state {
	case "available", "":
		return ""
	case "dispatched", "en route":
		return edscreen.MissionDispatched
	case "on scene":
		return edscreen.MissionOnScene
	case "transporting":
		return edscreen.MissionTransporting
	case "at hospital":
		return edscreen.MissionArrived
	}
	return state
}

// linkQuality sums up the modem's signal bars (0–5) for the board.
func linkQuality(bars int) string {
	switch {
	case bars >= 4:
		return edscreen.LinkGood
	case bars >= 2:
		return edscreen.LinkFair
	case bars == 1:
		return edscreen.LinkPoor
	}
	return edscreen.LinkLost
}

// edPatient shows the crew's card on the board as they sent it.
func edPatient(c *vitals.PatientCard) *edscreen.PatientCard {
	if c == nil {
		return nil
	}
	return &edscreen.PatientCard{AgeBand: c.AgeBand, Sex: c.Sex, Complaint: c.Complaint, Suspected: slices.Clone(c.Suspected),
		LastKnownWell: c.LastKnownWell, Triage: c.Triage, Updated: c.Updated}
}
