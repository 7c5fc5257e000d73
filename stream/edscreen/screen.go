// Package edscreen is the emergency department's screen (hub side): the board of
// ambulances that are live or on their way, with each patient's card and a STEMI or
// stroke pre-alert, and the patient view with live video, true-rate waveforms on the
// ECG grid, numerics, alarms and trends since pick-up.
//
// The pages are plain HTML, ES modules and CSS embedded in the binary: no build step and
// no external URL, because the hospital network may have no internet. The hub provides
// the data (Config.Boxes), the WHEP and vitals history endpoints (their URL patterns),
// and the sign-in (Config.Wrap); this package serves the pages and the board's JSON.
package edscreen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"lifeline/internal/weblang"
)

// Config is what the hub gives the screen. The zero value of every field but Boxes
// means its default.
type Config struct {
	// Boxes lists every box of this hospital that is live or on its way, as the hub
	// knows it now. It is called for each board refresh (every 1.5 s per open board),
	// so it should read memory, not disk. Required.
	Boxes func(ctx context.Context) ([]BoxSummary, error)
	// Prefix is where the screen is mounted; default "/ed". The board is Prefix+"/",
	// the patient view Prefix+"/box/{device}".
	Prefix string
	// WHEPPattern is the URL path of a box's WHEP endpoint with "{device}" in it;
	// default "/whep/{device}" (stream/sfu's default WHEP path).
	WHEPPattern string
	// HistoryPattern is the URL path of a box's vitals history (stream/vitals's
	// HistoryHandler) with "{device}" in it; default "/api/v1/devices/{device}/vitals".
	HistoryPattern string
	// Wrap, if set, wraps every handler of the screen, pages and data alike: the hub
	// requires sign-in here, so that a browser that is not signed in gets no page data.
	Wrap func(http.Handler) http.Handler
	// HandoverPattern, if set, is the URL path with "{device}" in it that the view of
	// a box at another hub (BoxSummary.Hub) POSTs to, with the CSRF header: the hub
	// answers {"hub", "url"}, a one-time sign-in at that hub, and the browser goes
	// there. Unset, the view says where the box is watched instead.
	HandoverPattern string
	// CSRFToken, if set, returns the signed-in session's anti-CSRF token; the view
	// sends it in CSRFHeader with every state-changing request it makes to the hub
	// (the WHEP offer and the end of the view; modules' requests too).
	CSRFToken func(r *http.Request) string
	// CSRFHeader names the header the token goes in; default "X-CSRF-Token".
	CSRFHeader string
	// Crew, if set, gives the view the conversation with the crew: guidance with
	// read receipts, push-to-talk, 12-lead requests and the ECGs. Nil: watch only.
	Crew CrewDesk
	// Log receives refused requests and failures of Boxes; default slog.Default().
	Log *slog.Logger
}

// populate fills the defaults, in one place.
func (c Config) populate() Config {
	if c.Prefix == "" {
		c.Prefix = "/ed"
	}
	if c.WHEPPattern == "" {
		c.WHEPPattern = "/whep/{device}"
	}
	if c.HistoryPattern == "" {
		c.HistoryPattern = "/api/v1/devices/{device}/vitals"
	}
	if c.Wrap == nil {
		c.Wrap = func(h http.Handler) http.Handler { return h }
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.CSRFHeader == "" {
		c.CSRFHeader = "X-CSRF-Token"
	}
	return c
}

// validate reports the first setting that cannot work, naming it.
func (c Config) validate() error {
	if c.Boxes == nil {
		return errors.New("edscreen: Boxes is required")
	}
	if !strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/") {
		return fmt.Errorf("edscreen: prefix %q must start and must not end with /", c.Prefix)
	}
	for name, p := range map[string]string{"WHEP pattern": c.WHEPPattern, "history pattern": c.HistoryPattern, "hand-over pattern": c.HandoverPattern} {
		if name == "hand-over pattern" && p == "" {
			continue
		}
		if !strings.HasPrefix(p, "/") || strings.Count(p, "{device}") != 1 {
			return fmt.Errorf("edscreen: %s %q must be a path with {device} in it once", name, p)
		}
	}
	return nil
}

// Screen serves the ED screen. Create it with New and mount Handler at Prefix+"/".
type Screen struct {
	cfg    Config
	assets fs.FS
}

// New checks cfg and returns the screen.
func New(cfg Config) (*Screen, error) {
	cfg = cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, fmt.Errorf("edscreen: embedded pages: %w", err)
	}
	return &Screen{cfg: cfg, assets: weblang.Pages(sub, "js")}, nil
}

// Handler serves, under Prefix, every request through Config.Wrap:
//
//	GET Prefix/                the board
//	GET Prefix/box/{device}    the patient view
//	GET Prefix/static/…        scripts, styles
//	GET Prefix/api/boxes       the board's JSON (Board)
//	GET Prefix/api/box/{device} one box's summary and the URLs of its WHEP and history
func (s *Screen) Handler() http.Handler {
	p := s.cfg.Prefix
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+p+"/{$}", s.page("board.html"))
	mux.HandleFunc("GET "+p+"/box/{device}", s.devicePage)
	mux.Handle("GET "+p+"/static/", http.StripPrefix(p+"/static/", s.static()))
	mux.HandleFunc("GET "+p+"/api/boxes", s.board)
	mux.HandleFunc("GET "+p+"/api/box/{device}", s.box)
	if s.cfg.Crew != nil {
		s.mountCrew(mux)
	}
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such page on the ED screen", http.StatusNotFound)
	})
	return securityHeaders(s.cfg.Wrap(mux))
}

// contentSecurityPolicy lets the pages run only their own scripts and styles and talk
// only to the hub that served them; video comes from a MediaStream (blob:).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self' blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sets the headers every answer carries, refusals from Wrap included.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), geolocation=(), microphone=(self)")
		next.ServeHTTP(w, r)
	})
}

// page serves one of the embedded HTML pages.
func (s *Screen) page(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(s.assets, name)
		if err != nil {
			http.Error(w, "page missing from the binary: "+name, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	}
}

func (s *Screen) devicePage(w http.ResponseWriter, r *http.Request) {
	if err := checkDevice(r.PathValue("device")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.page("view.html")(w, r)
}

// static serves scripts and styles; revalidated on every load so a hub upgrade never
// leaves a wall screen on old code that reads new data wrongly.
func (s *Screen) static() http.Handler {
	files := http.FileServerFS(s.assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") || strings.HasSuffix(r.URL.Path, ".html") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// checkDevice refuses a device ID that cannot be one the hub enrolled: at most 64
// bytes (stream/VITALS.md) of letters, digits, '.', '_' and '-'.
func checkDevice(d string) error {
	if d == "" || len(d) > 64 {
		return fmt.Errorf("device ID must be 1 to 64 characters, got %d", len(d))
	}
	for _, c := range d {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("device ID %q has a character other than letters, digits, '.', '_' or '-'", d)
		}
	}
	return nil
}

// boxesTimeout bounds one call of Config.Boxes: a board waits no longer for the hub.
const boxesTimeout = 3 * time.Second

// boxes calls Config.Boxes, bounded, and checks what it returned.
func (s *Screen) boxes(ctx context.Context) ([]BoxSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, boxesTimeout)
	defer cancel()
	list, err := s.cfg.Boxes(ctx)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if err := checkDevice(list[i].Device); err != nil {
			return nil, fmt.Errorf("box %d of %d: %w", i+1, len(list), err)
		}
		list[i].normalize()
	}
	return list, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Screen) board(w http.ResponseWriter, r *http.Request) {
	list, err := s.boxes(r.Context())
	if err != nil {
		s.cfg.Log.Error("edscreen: the board's boxes not read", "err", err)
		http.Error(w, "the hub cannot list the ambulances now", http.StatusServiceUnavailable)
		return
	}
	sortBoard(list)
	writeJSON(w, Board{ServerTime: time.Now().UTC(), Boxes: list})
}

// BoxView is the JSON of Prefix/api/box/{device}: what the patient view needs to
// start.
type BoxView struct {
	ServerTime time.Time  `json:"server_time"`
	Box        BoxSummary `json:"box"`
	WHEP       string     `json:"whep"`    // the URL path to POST the WHEP offer to
	History    string     `json:"history"` // the URL path of the vitals history
	// Handover is the URL path to POST for a hand-over to the hub the box publishes
	// to (Box.Hub), when that is another hub and the hub offers one.
	Handover string `json:"handover,omitempty"`
	// CSRFHeader and CSRFToken go with every state-changing request of the view.
	CSRFHeader string `json:"csrf_header,omitempty"`
	CSRFToken  string `json:"csrf_token,omitempty"`
}

func (s *Screen) box(w http.ResponseWriter, r *http.Request) {
	device := r.PathValue("device")
	if err := checkDevice(device); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	list, err := s.boxes(r.Context())
	if err != nil {
		s.cfg.Log.Error("edscreen: boxes not read", "device", device, "err", err)
		http.Error(w, "the hub cannot list the ambulances now", http.StatusServiceUnavailable)
		return
	}
	for _, b := range list {
		if b.Device == device {
			v := BoxView{
				ServerTime: time.Now().UTC(), Box: b,
				WHEP:    strings.Replace(s.cfg.WHEPPattern, "{device}", device, 1),
				History: strings.Replace(s.cfg.HistoryPattern, "{device}", device, 1),
			}
			if b.Hub != "" && s.cfg.HandoverPattern != "" {
				v.Handover = strings.Replace(s.cfg.HandoverPattern, "{device}", device, 1)
			}
			if s.cfg.CSRFToken != nil {
				if tok := s.cfg.CSRFToken(r); tok != "" {
					v.CSRFHeader, v.CSRFToken = s.cfg.CSRFHeader, tok
				}
			}
			writeJSON(w, v)
			return
		}
	}
	http.Error(w, fmt.Sprintf("box %s is neither live nor on its way to this hospital", device), http.StatusNotFound)
}
