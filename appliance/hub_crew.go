package appliance

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"

	"lifeline/internal/hubstate"
	"lifeline/internal/signin"
	"lifeline/stream/crew"
	"lifeline/stream/edscreen"
	"lifeline/stream/sfu"
	"lifeline/stream/vitals"
	"lifeline/telemetry/record"
)

// hubCrew is the ED screen's conversation with the crews (edscreen.CrewDesk): doctors
// send guidance, talk and ask for 12-lead ECGs; every signed-in viewer reads the
// conversation and the ECGs. Each action is audited before it is taken, and refused
// when its audit line cannot be written.
type hubCrew struct {
	h    *Hub
	crew *crew.Crew
}

// maxArchivedECG bounds the ECG file the hub reads to show one.
const maxArchivedECG = record.MaxECGFile

func (c *hubCrew) Me(r *http.Request) edscreen.Me {
	v, _ := signin.ViewerFrom(r.Context())
	return edscreen.Me{User: v.User, Name: v.Name, Role: v.Role, Language: v.Language, MayTalk: v.Role == signin.RoleDoctor}
}

// doctor returns the viewer when they may talk to crews, and audits the action first.
func (c *hubCrew) doctor(r *http.Request, event, device string, extra map[string]any) (signin.Viewer, error) {
	v, _ := signin.ViewerFrom(r.Context())
	if v.Role != signin.RoleDoctor {
		c.h.audit.Audit(event+".refused", map[string]any{"device": device, "user": v.User, "role": v.Role, "remote": r.RemoteAddr})
		return v, fmt.Errorf("%w: only doctors talk to crews; %s is %s", edscreen.ErrNotAllowed, v.User, v.Role)
	}
	fields := v.AuditFields()
	fields["device"] = device
	for k, x := range extra {
		fields[k] = x
	}
	if err := c.h.audit.Record(event, fields); err != nil {
		return v, fmt.Errorf("not audited, so not done: %w", err)
	}
	return v, nil
}

// from names the doctor to the crew: their display name, else their account.
func from(v signin.Viewer) string {
	if v.Name != "" {
		return v.Name
	}
	return v.User
}

func (c *hubCrew) Conversation(r *http.Request, device string) (crew.Box, error) {
	b, _ := c.crew.Box(device)
	return b, nil
}

func (c *hubCrew) Send(r *http.Request, device, text string) (crew.Note, error) {
	// Refused before its audit line: a text the crew cannot be sent is not sent.
	if len(text) > crew.MaxText {
		return crew.Note{}, fmt.Errorf("%w: %d bytes, at most %d", crew.ErrTooLong, len(text), crew.MaxText)
	}
	v, err := c.doctor(r, "crew.message.sent", device, map[string]any{"text": text})
	if err != nil {
		return crew.Note{}, err
	}
	return c.crew.Send(device, from(v), vitals.TypeText, text)
}

func (c *hubCrew) RequestECG(r *http.Request, device string) (crew.Note, error) {
	v, err := c.doctor(r, "ecg.requested", device, nil)
	if err != nil {
		return crew.Note{}, err
	}
	return c.crew.Send(device, from(v), vitals.TypeECGRequest, "")
}

// Talk checks that the WHEP session is this viewer's own view of device before
// letting its microphone through: a doctor cannot make another viewer's microphone
// speak to the crew.
func (c *hubCrew) Talk(r *http.Request, device, session string) error {
	v, _ := signin.ViewerFrom(r.Context())
	if session != "" && !c.ownsSession(device, session, "user:"+v.User) {
		return fmt.Errorf("%w: session %s is not %s's view of %s", edscreen.ErrNotFound, session, v.User, device)
	}
	event := "stream.talkback.start"
	if session == "" {
		event = "stream.talkback.stop"
	}
	if _, err := c.doctor(r, event, device, map[string]any{"session": session}); err != nil {
		return err
	}
	if err := c.h.fanout.Talkback(device, session); err != nil {
		return fmt.Errorf("%w: %v", edscreen.ErrNotLive, err)
	}
	return nil
}

func (c *hubCrew) ownsSession(device, session, who string) bool {
	for _, s := range c.h.fanout.Status().Sessions {
		if s.Device != device {
			continue
		}
		if slices.ContainsFunc(s.Viewers, func(vs sfu.ViewerStatus) bool { return vs.Session == session && vs.Viewer == who }) {
			return true
		}
	}
	return false
}

// ECG reads an ECG the box reported from the hub's archive. The box's own report
// scopes it: a viewer of one box cannot read another box's studies by UID.
func (c *hubCrew) ECG(r *http.Request, device, sop string) (record.ECGDocument, error) {
	var doc record.ECGDocument
	b, _ := c.crew.Box(device)
	if !slices.ContainsFunc(b.ECGs, func(e crew.ECG) bool { return e.SOP == sop && sop != "" }) {
		return doc, fmt.Errorf("%w: box %s reported no ECG %s", edscreen.ErrNotFound, device, sop)
	}
	inst, err := c.h.state.Instance(r.Context(), sop)
	switch {
	case errors.Is(err, hubstate.ErrNotFound):
		return doc, fmt.Errorf("%w: ECG %s has not reached the hub yet", edscreen.ErrNotFound, sop)
	case err != nil:
		return doc, err
	case inst.Device != device:
		return doc, fmt.Errorf("%w: ECG %s came from another box", edscreen.ErrNotFound, sop)
	case inst.Path == "":
		return doc, fmt.Errorf("%w: ECG %s was delivered to the PACS and is no longer kept here", edscreen.ErrNotFound, sop)
	}
	v, _ := signin.ViewerFrom(r.Context())
	fields := v.AuditFields()
	fields["device"], fields["sop"] = device, sop
	if err := c.h.audit.Record("ecg.viewed", fields); err != nil {
		return doc, fmt.Errorf("not audited, so not shown: %w", err)
	}
	f, err := os.Open(inst.Path)
	if err != nil {
		return doc, fmt.Errorf("ECG %s in the archive: %w", sop, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxArchivedECG+1))
	if err != nil {
		return doc, fmt.Errorf("ECG %s in the archive: %w", sop, err)
	}
	if len(data) > maxArchivedECG {
		return doc, fmt.Errorf("ECG %s in the archive is larger than %d bytes", sop, maxArchivedECG)
	}
	return record.ReadECG(data)
}
