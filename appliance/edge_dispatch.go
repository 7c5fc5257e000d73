package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"lifeline/dispatch"
	"lifeline/dispatch/jt808"
	"lifeline/hardware/gnss"
	"lifeline/hardware/modem"
	"lifeline/internal/service"
)

// The box's position, link and mission (issue 14): the GNSS receiver and the modem's
// AT port as supervised services, the JT/T 808 reporter to 120 dispatch, the mission
// with its ETA, the crew's API for them, and the report of all of it to the hub.

// Paths of the box's position API.
const (
	PositionPath = "/api/v1/position" // GET: BoxReport
	MissionPath  = "/api/v1/mission"  // POST MissionChange (application/json): MissionStatus
	MessagesPath = "/api/v1/messages" // GET: []CrewMessage, dispatch's texts, newest last
	// BoxReportPath is where the box POSTs its BoxReport on the hub, as itself (mTLS).
	BoxReportPath = "/api/v1/box/report"
)

// hubReportEvery is how often the box reports to its hub.
const hubReportEvery = 2 * time.Second

// position is the box's position, link and mission, as one part.
type position struct {
	cfg     EdgeConfig
	rx      *gnss.Receiver     // nil without [gnss] port
	md      *modem.Modem       // nil without [modem] port
	rep     *dispatch.Reporter // nil without [dispatch] server
	mission *dispatch.Mission

	mu       sync.Mutex
	messages []CrewMessage
	nextID   int
}

// CrewMessage is one of dispatch's text messages (JT/T 808 0x8300) for the crew.
type CrewMessage struct {
	ID        int       `json:"id"` // increasing, so the page knows which are new
	Time      time.Time `json:"time"`
	Text      string    `json:"text"`
	Emergency bool      `json:"emergency"`
}

// keptMessages is how many of dispatch's texts the box keeps for the status page.
const keptMessages = 20

// positionServices builds the position part when the box has any of [gnss] port,
// [modem] port or [dispatch] server, mounts its API, and returns its services.
func (e *Edge) positionServices() ([]service.Service, error) {
	cfg := e.cfg
	if cfg.GNSS.Port == "" && cfg.Modem.Port == "" && cfg.Dispatch.Server == "" {
		return nil, nil
	}
	mission, err := dispatch.NewMission(e.store, time.Now())
	if err != nil {
		return nil, fmt.Errorf("mission: %w", err)
	}
	if d := cfg.Dispatch.destination(); d != nil && mission.Status(time.Now()).Destination == nil {
		if err := mission.SetDestination(d); err != nil {
			return nil, fmt.Errorf("mission destination: %w", err)
		}
	}
	p := &position{cfg: cfg, mission: mission}
	var out []service.Service
	if cfg.Modem.Port != "" {
		p.md = modem.New(modem.Config{Port: cfg.Modem.Port, USB: usbID(cfg.Modem.USB), Baud: cfg.Modem.Baud,
			Interval: cfg.Modem.Poll.Duration, Log: e.log.With("service", "modem")})
		out = append(out, service.Service{Name: "modem", Run: p.md.Run, Status: func() any { return p.md.Status() }})
	}
	if cfg.Dispatch.Server != "" {
		if p.rep, err = p.newReporter(e); err != nil {
			return nil, err
		}
		out = append(out, service.Service{Name: "dispatch", Run: p.rep.Run, Status: func() any { return p.rep.Status() }})
	}
	if cfg.GNSS.Port != "" {
		p.rx = gnss.New(gnss.Config{Port: cfg.GNSS.Port, USB: usbID(cfg.GNSS.USB), Baud: cfg.GNSS.Baud,
			OnFix: p.onFix, Log: e.log.With("service", "gnss")})
		out = append(out, service.Service{Name: "gnss", Run: p.rx.Run, Status: func() any { return p.rx.Status() }})
	}
	out = append(out, service.Service{Name: "hub-report", Run: func(ctx context.Context, h *service.Health) error {
		return p.reportToHub(ctx, h, e)
	}})
	p.mount(e.mux, e)
	return out, nil
}

func (p *position) newReporter(e *Edge) (*dispatch.Reporter, error) {
	d := p.cfg.Dispatch
	var signal func() (byte, bool)
	if p.md != nil {
		signal = p.md.Signal
	}
	rep, err := dispatch.NewReporter(dispatch.Config{
		Server: d.Server, Edition: d.Edition.JT808(), Phone: d.TerminalID,
		Register: jt808.Register{Maker: "LIFEL", Model: "EDGE", TerminalID: lastDigits(d.TerminalID, 7)},
		Software: e.version, Interval: d.ReportInterval(),
		Store: e.store, Mission: p.mission, Signal: signal, OnText: p.onText,
		Log: e.log.With("service", "dispatch"),
	})
	if err != nil {
		return nil, fmt.Errorf("dispatch reporter: %w", err)
	}
	return rep, nil
}

// lastDigits is the last n characters of s (the terminal ID field of 0x0100 is 7
// bytes in 2013).
func lastDigits(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// onFix gives every GNSS epoch to the mission's ETA and to the reporter (which stores
// a due report durably before it returns).
func (p *position) onFix(f gnss.Fix) {
	p.mission.Observe(f)
	if p.rep != nil {
		p.rep.Offer(f)
	}
}

// onText keeps a text of dispatch's for the crew's status page.
func (p *position) onText(m jt808.TextMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	p.messages = append(p.messages, CrewMessage{ID: p.nextID, Time: time.Now().UTC(), Text: m.Text, Emergency: m.Flags&1 != 0})
	if len(p.messages) > keptMessages {
		p.messages = append([]CrewMessage(nil), p.messages[len(p.messages)-keptMessages:]...)
	}
}

func (p *position) crewMessages() []CrewMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]CrewMessage{}, p.messages...)
}

// report is the box's position, link and mission now.
func (p *position) report(now time.Time) BoxReport {
	r := BoxReport{Time: now.UTC(), Fix: FixNone}
	if p.rx != nil {
		st := p.rx.Status()
		r.Fix = string(st.State)
		if f := st.Fix; f != nil && !f.Time.IsZero() {
			r.Position = &BoxPosition{Lat: f.Lat, Lon: f.Lon, Datum: string(f.Datum), Time: f.Time,
				Satellites: f.Satellites, HDOP: f.HDOP}
			r.SpeedKmh = f.SpeedKmh
			if f.HasCourse {
				course := f.CourseDeg
				r.HeadingDeg = &course
			}
		}
	}
	if p.md != nil {
		if q := p.md.Latest(); !q.Time.IsZero() {
			r.Link = boxLink(q)
		}
	}
	ms := p.mission.Status(now)
	r.Mission = BoxMission{State: string(ms.State), Since: ms.Since}
	if d := ms.Destination; d != nil {
		r.Destination = &BoxDestination{Name: d.Name, Lat: d.Lat, Lon: d.Lon}
	}
	if eta := ms.ETA; eta != nil {
		r.ETA = &BoxETA{Arrival: eta.Arrival, RemainingS: eta.Remaining.Seconds(), DistanceM: eta.DistanceM,
			SpeedKmh: eta.SpeedKmh, SpeedAssumed: eta.SpeedFloor}
	}
	return r
}

func boxLink(q modem.LinkQuality) *BoxLink {
	l := &BoxLink{Time: q.Time, Technology: string(q.Technology), Operator: q.Operator, Registered: q.Registered, Bars: q.Bars}
	if q.HasRSRP {
		l.RSRP = &q.RSRP
	}
	if q.HasRSRQ {
		l.RSRQ = &q.RSRQ
	}
	if q.HasSINR {
		l.SINR = &q.SINR
	}
	return l
}

// MissionChange is the body of POST MissionPath: a new state (one of dispatch's
// mission states: "dispatched", "en route", "on scene", "transporting",
// "at hospital", "available"), a new destination, or both.
type MissionChange struct {
	State       string          `json:"state,omitempty"`
	Destination *BoxDestination `json:"destination,omitempty"`
}

// mount serves the crew's position API on the box's HTTP. Setting the mission changes
// what the box reports, so it is protected as the dead-letter retry is (a JSON body
// and the browser's same-origin headers): no page of another site can press it.
func (p *position) mount(mux *http.ServeMux, e *Edge) {
	mux.HandleFunc("GET "+PositionPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, p.report(time.Now()))
	})
	mux.HandleFunc("GET "+MessagesPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, p.crewMessages())
	})
	set := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "a mission change is a POST with Content-Type: application/json")
			return
		}
		var ch MissionChange
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&ch); err != nil {
			writeError(w, http.StatusBadRequest, "mission change: "+err.Error())
			return
		}
		code, err := p.change(ch, time.Now())
		if err != nil {
			writeError(w, code, err.Error())
			return
		}
		e.log.Info("mission changed through the status API", "state", ch.State, "remote", r.RemoteAddr, "user_agent", r.UserAgent())
		writeJSON(w, http.StatusOK, p.mission.Status(time.Now()))
	})
	mux.Handle("POST "+MissionPath, http.NewCrossOriginProtection().Handler(set))
}

var missionStates = []dispatch.MissionState{dispatch.Available, dispatch.Dispatched, dispatch.EnRoute,
	dispatch.OnScene, dispatch.Transporting, dispatch.AtHospital}

// change applies a crew's mission change, answering the HTTP status of a failure.
func (p *position) change(ch MissionChange, now time.Time) (int, error) {
	if d := ch.Destination; d != nil {
		if d.Name == "" || d.Lat < -90 || d.Lat > 90 || d.Lon < -180 || d.Lon > 180 {
			return http.StatusBadRequest, errors.New("a destination needs a name and a WGS-84 lat (-90…90) and lon (-180…180)")
		}
		if err := p.mission.SetDestination(&dispatch.Destination{Name: d.Name, Lat: d.Lat, Lon: d.Lon}); err != nil {
			return http.StatusInternalServerError, err
		}
	}
	if ch.State == "" {
		return 0, nil
	}
	known := false
	for _, s := range missionStates {
		known = known || string(s) == ch.State
	}
	if !known {
		return http.StatusBadRequest, fmt.Errorf("%q is not a mission state (%s)", ch.State, joinStates())
	}
	err := p.mission.Set(dispatch.MissionState(ch.State), now)
	if errors.Is(err, dispatch.ErrTransition) {
		return http.StatusConflict, fmt.Errorf("from %q the mission cannot go to %q", p.mission.State(), ch.State)
	}
	if err != nil {
		return http.StatusInternalServerError, err
	}
	// Back to available clears the destination; the hospital of the config is where
	// the next patient goes too.
	if d := p.cfg.Dispatch.destination(); d != nil && p.mission.Status(now).Destination == nil {
		if err := p.mission.SetDestination(d); err != nil {
			return http.StatusInternalServerError, err
		}
	}
	return 0, nil
}

func joinStates() string {
	names := make([]string, len(missionStates))
	for i, s := range missionStates {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// reportToHub POSTs the box's report to its enrolled hub every hubReportEvery, as the
// box (mutual TLS). A hub out of reach (a tunnel) degrades the service; the next
// report is the current one, nothing is queued: the hub wants where the ambulance is,
// dispatch keeps the track.
func (p *position) reportToHub(ctx context.Context, h *service.Health, e *Edge) error {
	id, err := waitForIdentity(ctx, h, e.dataDir, "reporting position to the hub once the box is enrolled")
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: id.ClientTLS()}}
	defer client.CloseIdleConnections()
	t := time.NewTicker(hubReportEvery)
	defer t.Stop()
	sent := 0
	for {
		hub := e.hubs.Current() // the hub the box uses now (edge_hubs.go)
		if err := postReport(ctx, client, strings.TrimRight(hub, "/")+BoxReportPath, p.report(time.Now())); err != nil {
			h.Degraded("hub out of reach; reporting again in "+hubReportEvery.String(), err)
		} else {
			sent++
			h.Ready(fmt.Sprintf("reporting to %s as %s every %s (%d sent)", hub, id.DeviceID, hubReportEvery, sent))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func postReport(ctx context.Context, client *http.Client, url string, r BoxReport) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("hub answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
