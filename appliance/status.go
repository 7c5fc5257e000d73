package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"lifeline/internal/durable"
	"lifeline/internal/service"
)

// Status is the body of GET /api/v1/status on both processes.
type Status struct {
	Role      string           `json:"role"` // "edge" or "hub"
	Version   string           `json:"version"`
	Device    string           `json:"device,omitempty"` // the box's enrolled identity
	StartedAt time.Time        `json:"started_at"`
	Overall   service.State    `json:"overall"` // the worst state of any service
	Services  []service.Status `json:"services"`
	SelfTest  []Check          `json:"self_test,omitempty"`
}

// newRegistry returns a metrics registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// statusMux serves /healthz, /metrics and /api/v1/status. /healthz answers 200 as
// soon as the process serves: a degraded service shows in the status, not as a
// failing healthz, because a box that is not enrolled still receives studies and
// reads monitors, and a hub that lost its shared state still serves the boxes' live
// streams. notes (nil: none) adds lines after "ok", such as whether a hub's shared
// state answers, for whoever reads healthz alone.
func statusMux(reg *prometheus.Registry, status func() Status, notes func() []string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
		if notes != nil {
			for _, n := range notes() {
				io.WriteString(w, n+"\n")
			}
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, status())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// shutdownGrace is how long a server's open requests may run on after shutdown.
const shutdownGrace = 2 * time.Second

// shutdown stops srv, letting open requests finish within shutdownGrace, and returns
// what its Serve (running into errc) ended with, unless that is the normal close.
func shutdown(srv *http.Server, errc <-chan error) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	srv.Shutdown(ctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// httpService serves handler on a listener that is already bound, so that a busy
// port is reported at start-up instead of inside a restart loop.
func httpService(name string, ln net.Listener, handler http.Handler, log *slog.Logger) service.Service {
	return service.Service{Name: name, Run: func(ctx context.Context, h *service.Health) error {
		// Reading and answering each request are bounded by the handler (boundRequests),
		// so that one that streams can lift them; headers and idle keep-alive
		// connections here.
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: httpReadHeaderTimeout,
			IdleTimeout:       httpIdleTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		if ln.Addr().Network() == "unix" {
			h.Ready("serving on socket " + ln.Addr().String())
		} else {
			h.Ready("serving http://" + ln.Addr().String())
		}
		select {
		case err := <-errc:
			return fmt.Errorf("http server on %s: %w", ln.Addr(), err)
		case <-ctx.Done():
			return shutdown(srv, errc)
		}
	}}
}

// rebindingGuard refuses requests whose Host names something other than a loopback
// address when the server listens on loopback only. Only a page that had a name of its
// own resolved to 127.0.0.1 (DNS rebinding) sends those, to read the vitals or press
// the box's buttons from the crew's browser. A server listening on the network was
// exposed on purpose and is reached by whatever name the network gives it.
func rebindingGuard(ln net.Addr, h http.Handler) http.Handler {
	if tcp, ok := ln.(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, fmt.Sprintf("this server answers on loopback only, not as %q", r.Host), http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine's loopback.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// listen binds addr for TCP, naming the config key in the error.
func listen(key, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", key, addr, err)
	}
	return ln, nil
}

// NewLogger returns the process logger: JSON when stderr is not a terminal (journald,
// files, log shippers), text when a person is watching.
func NewLogger(l LogSection, w *os.File) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level))
	opts := &slog.HandlerOptions{Level: level}
	format := l.Format
	if format == "auto" || format == "" {
		format = "json"
		if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openStateStore creates the process's data directory (only its owner may read it)
// and opens the durable store in it.
func openStateStore(dataDir, path string) (*durable.Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dataDir, err)
	}
	return durable.Open(path, 0)
}
