package edscreen

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"lifeline/stream/crew"
	"lifeline/telemetry/record"
)

// CrewDesk is what the patient view does with the crew, as the hub provides it: the
// conversation (guidance with receipts, 12-lead requests and their ECGs), push-to-talk
// and the ECGs themselves. The hub decides who may do what: each method gets the
// request, with the signed-in viewer in its context, and refuses with an error
// wrapping ErrNotAllowed. Each method also writes its audit line, and fails when it
// cannot.
type CrewDesk interface {
	// Conversation returns device's crew record.
	Conversation(r *http.Request, device string) (crew.Box, error)
	// Send sends guidance text to the crew.
	Send(r *http.Request, device, text string) (crew.Note, error)
	// RequestECG asks the box for a 12-lead ECG.
	RequestECG(r *http.Request, device string) (crew.Note, error)
	// Talk makes the viewer's WHEP session (the last element of its resource URL) the
	// voice the crew hears; session "" stops.
	Talk(r *http.Request, device, session string) error
	// ECG returns an ECG the box sent, from the hub's archive; ErrNotFound while it has
	// not arrived.
	ECG(r *http.Request, device, sop string) (record.ECGDocument, error)
	// Me says who the viewer is and what they may do, for the page to offer only that.
	Me(r *http.Request) Me
}

// Me is the JSON of Prefix/api/me.
type Me struct {
	User     string `json:"user"`
	Name     string `json:"name"`
	Role     string `json:"role"`
	Language string `json:"language"` // the account's language: "zh-CN" or "en"
	// MayTalk says the viewer may send guidance, talk and request ECGs (a doctor).
	MayTalk bool `json:"may_talk"`
	// CSRFHeader and CSRFToken go with the page's own state-changing requests (the
	// screen fills them from Config.CSRFToken).
	CSRFHeader string `json:"csrf_header,omitempty"`
	CSRFToken  string `json:"csrf_token,omitempty"`
}

// Errors a CrewDesk returns, answered as 403, 404 and 409.
var (
	ErrNotAllowed = errors.New("edscreen: not allowed for this user")
	ErrNotFound   = errors.New("edscreen: not found")
	ErrNotLive    = errors.New("edscreen: the box is not connected")
)

// maxCrewRequest bounds a guidance or talk request body.
const maxCrewRequest = 8 << 10

// mountCrew adds the crew's routes under Prefix/api.
func (s *Screen) mountCrew(mux *http.ServeMux) {
	p, c := s.cfg.Prefix, s.cfg.Crew
	mux.HandleFunc("GET "+p+"/api/me", func(w http.ResponseWriter, r *http.Request) {
		me := c.Me(r)
		if s.cfg.CSRFToken != nil {
			if tok := s.cfg.CSRFToken(r); tok != "" {
				me.CSRFHeader, me.CSRFToken = s.cfg.CSRFHeader, tok
			}
		}
		writeJSON(w, me)
	})
	mux.HandleFunc("GET "+p+"/api/box/{device}/crew", s.crewRoute(func(w http.ResponseWriter, r *http.Request, device string) error {
		b, err := c.Conversation(r, device)
		if err == nil {
			writeJSON(w, b)
		}
		return err
	}))
	mux.HandleFunc("POST "+p+"/api/box/{device}/messages", s.crewRoute(func(w http.ResponseWriter, r *http.Request, device string) error {
		var body struct {
			Text string `json:"text"`
		}
		if err := readBody(r, &body); err != nil {
			return err
		}
		if body.Text == "" {
			return fmt.Errorf("%w: empty message", errBadRequest)
		}
		n, err := c.Send(r, device, body.Text)
		if err == nil {
			writeJSON(w, n)
		}
		return err
	}))
	mux.HandleFunc("POST "+p+"/api/box/{device}/ecg12", s.crewRoute(func(w http.ResponseWriter, r *http.Request, device string) error {
		n, err := c.RequestECG(r, device)
		if err == nil {
			writeJSON(w, n)
		}
		return err
	}))
	mux.HandleFunc("POST "+p+"/api/box/{device}/talk", s.crewRoute(func(w http.ResponseWriter, r *http.Request, device string) error {
		var body struct {
			Session string `json:"session"` // "" stops talking
		}
		if err := readBody(r, &body); err != nil {
			return err
		}
		if err := c.Talk(r, device, body.Session); err != nil {
			return err
		}
		writeJSON(w, map[string]any{"talking": body.Session != ""})
		return nil
	}))
	mux.HandleFunc("GET "+p+"/api/box/{device}/ecg/{sop}", s.crewRoute(func(w http.ResponseWriter, r *http.Request, device string) error {
		doc, err := c.ECG(r, device, r.PathValue("sop"))
		if err == nil {
			writeJSON(w, doc)
		}
		return err
	}))
	mux.HandleFunc("GET "+p+"/ecg/{device}/{sop}", func(w http.ResponseWriter, r *http.Request) {
		if err := checkDevice(r.PathValue("device")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.page("ecg.html")(w, r)
	})
}

var errBadRequest = errors.New("bad request")

func readBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxCrewRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return nil
}

// crewRoute checks the device and maps a CrewDesk's errors to answers.
func (s *Screen) crewRoute(h func(w http.ResponseWriter, r *http.Request, device string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		device := r.PathValue("device")
		if err := checkDevice(device); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		err := h(w, r, device)
		if err == nil {
			return
		}
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, errBadRequest), errors.Is(err, crew.ErrTooLong):
			code = http.StatusBadRequest
		case errors.Is(err, ErrNotAllowed):
			code = http.StatusForbidden
		case errors.Is(err, ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, ErrNotLive):
			code = http.StatusConflict
		}
		if code == http.StatusInternalServerError {
			s.cfg.Log.Error("edscreen: crew request failed", "device", device, "path", r.URL.Path, "err", err)
		}
		http.Error(w, err.Error(), code)
	}
}
