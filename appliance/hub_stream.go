package appliance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/service"
	"lifeline/internal/signin"
	"lifeline/internal/trust"
	"lifeline/stream/crew"
	"lifeline/stream/sfu"
	"lifeline/stream/vitals"
)

// hubVitalsPath is the hub's durable vitals history, apart from hub.db: waves arrive
// many times a second from every box, and their group commits must not queue behind
// enrolment and study writes.
func hubVitalsPath(dataDir string) string { return filepath.Join(dataDir, "vitals.db") }

// hubWHEPPath is where viewers ask for a box's live stream: POST hubWHEPPath/{device}.
const hubWHEPPath = "/whep"

// hubHistoryPath serves a box's stored vitals: GET hubHistoryPath/{device}/vitals.
const hubHistoryPath = "/api/v1/boxes/"

// viewerRoles may watch a box: every signed-in role; talking to the crew is the
// doctors' alone, and is checked where talk-back is offered.
var viewerRoles = []string{signin.RoleDoctor, signin.RoleObserver, signin.RoleAdmin}

// addStream wires the live stream's hub side: boxes publish over WHIP on the boxes'
// server with their mutual-TLS identity; signed-in doctors and viewer-token holders
// watch over WHEP on the viewer listener; every vitals message a box sends is kept
// durably and acknowledged, so a doctor who opens the view mid-transport sees the
// trends since pick-up.
func (h *Hub) addStream() error {
	store, err := durable.Open(hubVitalsPath(h.dataDir), 0)
	if err != nil {
		return fmt.Errorf("vitals history: %w", err)
	}
	h.closers = append(h.closers, store.Close)
	history, err := h.vitalsHistory(store)
	if err != nil {
		return err
	}
	var fanout *sfu.SFU
	var crewDesk *crew.Crew
	archive, err := vitals.NewArchive(vitals.ArchiveConfig{
		History:    history,
		Log:        h.log,
		Registerer: h.reg,
		SendAck: func(device string, ack []byte) {
			// A box whose session ended gets the ack again after its replay.
			_ = fanout.SendToPublisher(device, vitals.LabelReliable, ack)
		},
	})
	if err != nil {
		return err
	}
	s := h.cfg.Stream
	listen := h.cfg.StreamListen()
	tcp := listen
	if !s.TCP {
		tcp = "off"
	}
	fanout, err = sfu.New(sfu.Config{
		Listen:             listen,
		TCPListen:          tcp,
		Addresses:          s.Addresses,
		WHIPPath:           hubWHIPPath,
		WHEPPath:           hubWHEPPath,
		AuthorizePublisher: publishingDevice,
		AuthorizeViewer:    h.authorizeViewer,
		OnPublisherMessage: func(device, label string, data []byte) []byte {
			if label != vitals.LabelReliable && label != vitals.LabelWave {
				return nil
			}
			if _, err := archive.Receive(device, label, data); err != nil {
				h.log.Warn("vitals message refused", "device", device, "channel", label, "err", err)
				return nil
			}
			if label == vitals.LabelReliable {
				h.crewFromBox(crewDesk, device, data)
			}
			return nil
		},
		OnEvent:    h.auditStreamEvent,
		Log:        h.log.With("service", "live-stream"),
		Registerer: h.reg,
	})
	if err != nil {
		return err
	}
	h.fanout = fanout
	crewDesk, err = crew.New(crew.Config{
		Store: store,
		Send: func(device string, data []byte) error {
			return fanout.SendToPublisher(device, vitals.LabelControl, data)
		},
		Log: h.log.With("service", "crew"),
	})
	if err != nil {
		return fmt.Errorf("crew messages: %w", err)
	}
	h.crew = &hubCrew{h: h, crew: crewDesk}
	whip := h.RequireDevice(fanout.WHIP())
	h.mux.Handle(hubWHIPPath, whip)
	h.mux.Handle(hubWHIPPath+"/", whip)
	h.HandleViewer(hubWHEPPath+"/", h.viewerAccess(h.whepElsewhere(fanout.WHEP())))
	h.HandleViewer("GET "+hubHistoryPath+"{device}/vitals", h.gate.Require(viewerRoles...)(h.auditHistory(archive.HistoryHandler())))
	if err := h.addEDScreen(); err != nil {
		return err
	}
	h.sup.Add(fanout.Service())
	h.sup.Add(service.Service{Name: "crew", Run: func(ctx context.Context, health *service.Health) error {
		health.Ready("guidance and ECG requests are kept and sent again until each box confirms them")
		return crewDesk.Run(ctx)
	}})
	h.sup.Add(service.Service{Name: "vitals-archive", Run: func(ctx context.Context, health *service.Health) error {
		const keeping = "keeping every vitals message the boxes send, acknowledged once on disk"
		health.Ready(keeping)
		return archive.RunReporting(ctx, func(err error) {
			if err != nil {
				health.Degraded("vitals are not being committed: the boxes keep them and send them again once a commit works", err)
				return
			}
			health.Ready(keeping)
		})
	}})
	return nil
}

// publishingDevice is the WHIP publisher's device: the box's certificate, admitted by
// RequireDevice before the SFU sees the request.
func publishingDevice(r *http.Request) (string, error) {
	if id, ok := trust.DeviceFrom(r.Context()); ok {
		return id, nil
	}
	return "", errors.New("no enrolled box certificate")
}

// viewerAccess admits a WHEP request by a viewer token (a hospital system, any
// standard WHEP player) or else by a signed-in browser session.
func (h *Hub) viewerAccess(next http.Handler) http.Handler {
	signedIn := h.gate.Require(viewerRoles...)(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			next.ServeHTTP(w, r)
			return
		}
		signedIn.ServeHTTP(w, r)
	})
}

// authorizeViewer names who watches device, for the SFU and the audit. The view is
// patient data: its audit line is written before the view starts, and a view whose
// line cannot be written is refused.
func (h *Hub) authorizeViewer(r *http.Request, device string) (string, error) {
	var who string
	if v, ok := signin.ViewerFrom(r.Context()); ok {
		who = "user:" + v.User
	} else if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		claim, err := h.tokens.verify(bearer, device, time.Now())
		if err != nil {
			h.audit.Audit("stream.view.refused", map[string]any{"device": device, "remote": r.RemoteAddr, "reason": err.Error()})
			return "", err
		}
		who = "token:" + claim.Subject
	} else {
		return "", errors.New("not signed in")
	}
	// Several hubs on one state: a box's session is at one of them, and the viewer is
	// told which (hub_board_shared.go) rather than that the box does not publish. A
	// token holder was sent there already (whepElsewhere), and the ED screen hands a
	// signed-in doctor over (hub_viewer_handover.go); this is what a browser session
	// that asked here anyway is told.
	if l, ok := h.liveElsewhere(r.Context(), device); ok {
		return "", fmt.Errorf("%s publishes its live stream to hub %s, not to this one: watch it there%s", device, l.Hub, atURL(l.ViewerURL))
	}
	if err := h.audit.Record("stream.view.requested", map[string]any{"device": device, "viewer": who, "remote": r.RemoteAddr}); err != nil {
		return "", fmt.Errorf("view not audited, so not started: %w", err)
	}
	return who, nil
}

// auditHistory audits every read of a box's stored vitals before answering it.
func (h *Hub) auditHistory(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := signin.ViewerFrom(r.Context())
		if err := h.audit.Record("vitals.history.read", map[string]any{"device": r.PathValue("device"), "viewer": v.User, "remote": r.RemoteAddr}); err != nil {
			http.Error(w, "the audit log cannot be written; vitals are not shown", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// auditStreamEvent writes the SFU's session and viewer events to the audit log.
func (h *Hub) auditStreamEvent(ev sfu.Event) {
	fields := map[string]any{"device": ev.Device, "session": ev.Session}
	if ev.Viewer != "" {
		fields["viewer"] = ev.Viewer
	}
	if ev.Remote != "" {
		fields["remote"] = ev.Remote
	}
	if ev.Reason != "" {
		fields["reason"] = ev.Reason
	}
	h.audit.Audit(string(ev.Kind), fields)
}

// crewFromBox passes what the crew sent (receipts, the patient card, ECG reports) to
// the conversation record, after the archive has stored it.
func (h *Hub) crewFromBox(c *crew.Crew, device string, data []byte) {
	m, err := vitals.Decode(data)
	if err != nil {
		return // the archive took it, so this cannot happen; nothing to add if it does
	}
	switch m.Type {
	case vitals.TypeReceipt, vitals.TypePatient, vitals.TypeECG:
		if err := c.FromBox(device, m); err != nil {
			h.log.Error("crew message not recorded", "device", device, "type", m.Type, "seq", m.Seq, "err", err)
		}
	}
}
