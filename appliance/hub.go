package appliance

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/dicom/transfer"
	"lifeline/internal/audit"
	"lifeline/internal/hubstate"
	"lifeline/internal/service"
	"lifeline/internal/signin"
	"lifeline/internal/trust"
	"lifeline/stream/sfu"
)

// Hub is the hospital side: the one place boxes enrol with, upload to and publish to.
type Hub struct {
	cfg      HubConfig
	dataDir  string
	version  string
	log      *slog.Logger
	reg      *prometheus.Registry
	state    hubstate.Store
	auth     *trust.Authority
	devices  *trust.Registry
	audit    *audit.Log
	sup      *service.Supervisor
	started  time.Time
	mux      *http.ServeMux // the boxes' side, server.listen (8443)
	lastSeen sync.Map       // device ID → time.Time of its last request
	refusals *refusalAudit  // strangers' repeated refusals, one line a minute (hub_enrol.go)

	serverCert atomic.Pointer[trust.HubCertificate] // the box port's, renewed while running (hub_renew.go)

	gate       *signin.Gate
	viewer     *http.ServeMux         // the browsers' side, viewer.listen (8444)
	viewerAddr atomic.Pointer[string] // bound by Run

	fanout  *sfu.SFU      // the live streams: WHIP from boxes, WHEP to viewers
	crew    *hubCrew      // the ED's conversation with the crews
	tokens  *viewerTokens // bearer tokens for standard WHEP players
	boxes   boxBoard      // the latest report of each box (hub_boxes.go)
	shared  *sharedWatch  // the shared state, when several hubs share it (hub_shared.go)
	closers []func() error
}

// Paths of the hub's state under its data directory.
func hubStorePath(dataDir string) string { return filepath.Join(dataDir, "hub.db") }
func hubCADir(dataDir string) string     { return filepath.Join(dataDir, "ca") }
func hubAuditPath(dataDir string) string { return filepath.Join(dataDir, "audit.log") }
func adminSocket(dataDir string) string  { return filepath.Join(dataDir, "admin.sock") }

// connectionGap is how long a device must be silent before its next request is
// audited as a new connection; auditing every request would bury the events that
// matter.
const connectionGap = 5 * time.Minute

// OpenHub prepares the hub's state in dataDir. It fails when another hub holds it.
func OpenHub(cfg HubConfig, dataDir, version string, log *slog.Logger) (*Hub, error) {
	store, err := openHubState(dataDir, cfg.State, 0)
	if err != nil {
		return nil, err
	}
	auth, err := trust.OpenAuthority(hubCADir(dataDir))
	if err != nil {
		store.Close()
		return nil, err
	}
	auditLog, err := audit.Open(hubAuditPath(dataDir), log)
	if err != nil {
		store.Close()
		return nil, err
	}
	if err := joinShared(store, auth, auditLog, dataDir); err != nil {
		store.Close()
		auditLog.Close()
		return nil, err
	}
	reg := newRegistry()
	h := &Hub{
		cfg: cfg, dataDir: dataDir, version: version, log: log, reg: reg,
		state: store, auth: auth, devices: trust.NewRegistry(hubRegistry(store), auth), audit: auditLog,
		sup: service.NewSupervisor(log, reg, service.DefaultBackoff), started: time.Now(), mux: http.NewServeMux(),
		viewer: http.NewServeMux(), tokens: newViewerTokens(dataDir),
	}
	h.gate = signin.New(signinConfig(cfg.Viewer), store, auditLog, log.With("service", "signin"))
	h.gate.Mount(h.viewer)
	h.refusals = h.newRefusalAudit()
	h.mux.Handle(trust.EnrollPath, h.enrolEndpoint())
	h.mux.Handle("GET /api/v1/hello", h.RequireDevice(http.HandlerFunc(h.hello)))
	h.addRenewal()
	if err := h.addIngest(); err != nil {
		store.Close()
		auditLog.Close()
		return nil, err
	}
	if err := h.addStream(); err != nil {
		h.closeAll()
		store.Close()
		auditLog.Close()
		return nil, err
	}
	h.addSharedWatch()
	return h, nil
}

// RequireDevice admits only enrolled, active boxes, and audits a box's first request
// after a silence as a connection. Refusals are audited per address, a flood of them
// as one line a minute.
func (h *Hub) RequireDevice(next http.Handler) http.Handler {
	return trust.RequireDevice(h.devices, h.refusals, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := trust.DeviceFrom(r.Context())
		now := time.Now()
		if prev, ok := h.lastSeen.Swap(id, now); !ok || now.Sub(prev.(time.Time)) > connectionGap {
			h.audit.Audit("device.connected", map[string]any{"device": id, "remote": r.RemoteAddr, "proto": r.Proto})
		}
		next.ServeHTTP(w, r)
	}))
}

func (h *Hub) hello(w http.ResponseWriter, r *http.Request) {
	id, _ := trust.DeviceFrom(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{"device": id, "time": time.Now().UTC(), "version": h.version})
}

// Status returns the hub's /api/v1/status body.
func (h *Hub) Status() Status {
	services := h.sup.Status()
	return Status{Role: "hub", Version: h.version, StartedAt: h.started, Overall: service.Overall(services), Services: services}
}

// Run serves until ctx ends, then shuts down within the grace period.
func (h *Hub) Run(ctx context.Context) error {
	defer h.state.Close()
	defer h.audit.Close()
	defer h.closeAll()
	tlsConf, err := h.serverTLS()
	if err != nil {
		return err
	}
	statusLn, err := listen("status.listen", h.cfg.Status.Listen)
	if err != nil {
		return err
	}
	public, err := transfer.Listen(h.cfg.Server.Listen, transfer.ServerConfig{TLS: tlsConf, Handler: h.mux, Log: h.log, Metrics: h.reg})
	if err != nil {
		statusLn.Close()
		return fmt.Errorf("server.listen %s: %w", h.cfg.Server.Listen, err)
	}
	viewerLn, err := listen("viewer.listen", h.cfg.ViewerListen())
	if err != nil {
		statusLn.Close()
		public.Close()
		return err
	}
	addr := viewerLn.Addr().String()
	h.viewerAddr.Store(&addr)
	adminLn, err := listenAdmin(adminSocket(h.dataDir))
	if err != nil {
		statusLn.Close()
		public.Close()
		viewerLn.Close()
		return err
	}
	statusMux := statusMux(h.reg, h.Status, h.sharedNote)
	h.mountBoxes(statusMux)
	h.sup.Add(httpService("status-http", statusLn, boundRequests(statusMux, httpReadTimeout, httpWriteTimeout), h.log))
	h.sup.Add(publicService(public))
	h.sup.Add(h.viewerService(viewerLn, func() *tls.Certificate { return h.serverCert.Load().Current() }))
	h.sup.Add(service.Service{Name: "signin", Run: func(ctx context.Context, health *service.Health) error {
		health.Ready("sweeping ended sessions and used sign-in links")
		return h.gate.Run(ctx)
	}})
	h.sup.Add(adminService(adminLn, h.adminMux(), h.log))
	h.log.Info("hub serving", "public", public.Addr(), "viewer", h.ViewerURL(), "status", statusLn.Addr().String(), "data", h.dataDir)
	return h.sup.Run(ctx, 5*time.Second)
}

// publicService serves the boxes and viewers: HTTPS on TCP and HTTP/3 on UDP, one
// handler, one certificate, both requiring the box's certificate where it matters.
// It is the server the transfer tests run, with the same QUIC settings.
func publicService(srv *transfer.Server) service.Service {
	return service.Service{Name: "hub-server", Run: func(ctx context.Context, health *service.Health) error {
		health.Ready(fmt.Sprintf("HTTPS and HTTP/3 on %s", srv.Addr()))
		return srv.Serve(ctx)
	}}
}

// closeAll releases what the hub's parts opened besides its state and audit log.
func (h *Hub) closeAll() {
	for _, c := range h.closers {
		if err := c(); err != nil {
			h.log.Warn("closing on shutdown", "err", err)
		}
	}
	h.closers = nil
}

// Handle mounts a handler on the hub's public side (8443), e.g. the upload ingest.
func (h *Hub) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// AddService adds a capability to the hub's supervisor; call before Run.
func (h *Hub) AddService(s service.Service) { h.sup.Add(s) }
