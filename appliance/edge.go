package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/dicom/dimse"
	"lifeline/dicom/spool"
	"lifeline/dicom/transfer"
	"lifeline/internal/durable"
	"lifeline/internal/service"
	"lifeline/internal/trust"
	"lifeline/telemetry"
)

// Edge is the box: everything that runs in the ambulance or the clinic.
type Edge struct {
	cfg     EdgeConfig
	dataDir string
	version string
	log     *slog.Logger
	reg     *prometheus.Registry
	store   *durable.Store
	sup     *service.Supervisor
	started time.Time
	mux     *http.ServeMux
	bus     *telemetry.Bus

	// The parts that present the box's certificate are built once it is enrolled; the
	// status API and the operator's actions reach them here.
	forwarder enrolledPart[*transfer.Forwarder]
	receiver  enrolledPart[*dimse.SCP]
	stream    enrolledPart[*liveStream]

	spool *spool.Spool // the DICOM spool, where the box's own ECGs go too
	crew  *crewDesk    // the crew's messages, patient card and ECGs

	mu       sync.Mutex
	selfTest map[string]Check
	identity *trust.Identity

	hubs *hubRoute // which of the hub's addresses the box uses (edge_hubs.go)
}

// IdentityDir is where the box keeps its key, certificate and hub authority.
func IdentityDir(dataDir string) string { return filepath.Join(dataDir, "identity") }

func edgeStorePath(dataDir string) string { return filepath.Join(dataDir, "edge.db") }

// hubCheckInterval is how often the box checks that it can reach its hub;
// hubFailoverPoll how often while it cannot and has other addresses of it to try.
const (
	hubCheckInterval = 30 * time.Second
	hubFailoverPoll  = 5 * time.Second
)

// OpenEdge prepares the box's state in dataDir. It fails when another box process
// holds it.
func OpenEdge(cfg EdgeConfig, dataDir, version string, log *slog.Logger) (*Edge, error) {
	store, err := openStateStore(dataDir, edgeStorePath(dataDir))
	if err != nil {
		return nil, err
	}
	reg := newRegistry()
	e := &Edge{
		cfg: cfg, dataDir: dataDir, version: version, log: log, reg: reg, store: store,
		sup: service.NewSupervisor(log, reg, service.DefaultBackoff), started: time.Now(),
		selfTest: map[string]Check{}, hubs: newHubRoute(cfg.Hub),
	}
	e.mux = statusMux(reg, e.Status, nil)
	e.mux.HandleFunc("GET /{$}", serveStatusPage)
	e.mux.HandleFunc("GET "+statusStaticPrefix, serveStatusAsset)
	e.handleDeadLetters()
	e.addRenewal()
	if err := e.addDICOM(); err != nil {
		store.Close()
		return nil, err
	}
	if err := e.addTelemetry(); err != nil {
		store.Close()
		return nil, err
	}
	e.crew = newCrewDesk(e)
	e.crew.handle(e.mux)
	e.sup.Add(service.Service{Name: "crew", Run: func(ctx context.Context, h *service.Health) error {
		h.Ready("the hospital's messages and 12-lead requests reach the crew's page")
		return e.crew.Run(ctx)
	}})
	e.addStream()
	return e, nil
}

// Status returns the box's /api/v1/status body.
func (e *Edge) Status() Status {
	services := e.sup.Status()
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{Role: "edge", Version: e.version, StartedAt: e.started, Overall: service.Overall(services), Services: services}
	if e.identity != nil {
		st.Device = e.identity.DeviceID
	}
	for _, name := range []string{"clock", "disk", "serial", "hub", "certificate"} {
		if c, ok := e.selfTest[name]; ok {
			st.SelfTest = append(st.SelfTest, c)
		}
	}
	return st
}

func (e *Edge) recordCheck(c Check) {
	e.mu.Lock()
	prev, had := e.selfTest[c.Name]
	e.selfTest[c.Name] = c
	e.mu.Unlock()
	if !had || prev.Result != c.Result {
		level := slog.LevelInfo
		if c.Result != "ok" {
			level = slog.LevelWarn
		}
		e.log.Log(context.Background(), level, "self-test", "check", c.Name, "result", c.Result, "detail", c.Detail)
	}
}

// Identity returns the box's enrolled identity, or nil before enrolment.
func (e *Edge) Identity() *trust.Identity {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.identity
}

// loadIdentity reads the identity from disk, so that an enrolment done while the box
// runs takes effect without a restart.
func (e *Edge) loadIdentity() (*trust.Identity, error) {
	id, err := trust.LoadIdentity(IdentityDir(e.dataDir))
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.identity = id
	e.mu.Unlock()
	return id, nil
}

// Run serves until ctx ends, then shuts down within the grace period.
func (e *Edge) Run(ctx context.Context) error {
	defer e.store.Close()
	httpLn, err := listen("http.listen", e.cfg.HTTP.Listen)
	if err != nil {
		return err
	}
	e.recordCheck(checkClock(time.Now()))
	e.recordCheck(checkDisk(e.dataDir, e.cfg.DICOM.MinFreeMB))
	var ports []string
	for _, m := range e.cfg.Monitor {
		ports = append(ports, m.Port)
	}
	ports = append(ports, e.cfg.GNSS.Port, e.cfg.Modem.Port)
	e.recordCheck(checkSerialPorts(ports))

	e.sup.Add(httpService("status-http", httpLn, boundRequests(rebindingGuard(httpLn.Addr(), e.mux), httpReadTimeout, httpWriteTimeout), e.log))
	e.sup.Add(service.Service{Name: "hub-link", Run: e.runHubLink})
	positionServices, err := e.positionServices() // edge_dispatch.go
	if err != nil {
		httpLn.Close()
		return err
	}
	for _, svc := range positionServices {
		e.sup.Add(svc)
	}
	e.log.Info("box serving", "http", httpLn.Addr().String(), "hub", e.cfg.Hub.URL, "data", e.dataDir)
	// A check of the hubs that a part's report started would otherwise hold that
	// part's stop, and the forwarder's Close, for up to forwardRouteCheck.
	defer context.AfterFunc(ctx, e.hubs.stop)()
	if err := e.sup.Run(ctx, 5*time.Second); err != nil {
		return err
	}
	// Every service has stopped, so nothing uses the forwarder's connection any more,
	// and nothing receives into the spool: its lander indexes what was acknowledged
	// last (which Open would otherwise do at the next start) before the store closes.
	if fw, ok := e.forwarder.get(); ok {
		fw.Close()
	}
	if e.spool != nil {
		if err := e.spool.Close(); err != nil {
			e.log.Warn("spool: acknowledged instances left for the next start to index", "err", err)
		}
	}
	return nil
}

// runHubLink watches the box's enrolment and its hub: degraded while the box is not
// enrolled or the hub is out of reach, which is normal in a tunnel; the box keeps
// receiving studies and reading monitors meanwhile.
func (e *Edge) runHubLink(ctx context.Context, h *service.Health) error {
	for {
		id, err := e.loadIdentity()
		var c Check
		switch {
		case errors.Is(err, trust.ErrNotEnrolled):
			c = e.hubs.check(ctx, nil)
			h.Degraded("not enrolled: run 'lifeline edge enroll --hub URL --code CODE'", err)
		case err != nil:
			c = check("hub", "fail", "box identity unreadable: %v", err)
			h.Degraded("box identity unreadable", err)
		default:
			c = e.hubs.check(ctx, id.ClientTLS())
			if c.Result == "ok" {
				h.Ready(fmt.Sprintf("enrolled as %s; %s", id.DeviceID, c.Detail))
			} else {
				h.Degraded(fmt.Sprintf("enrolled as %s; %s", id.DeviceID, c.Detail), errors.New(c.Detail))
			}
		}
		e.recordCheck(c)
		// Until the box is enrolled, look again soon, so that the banner names the box as
		// soon as 'lifeline edge enroll' has run rather than up to a hub check later.
		next := hubCheckInterval
		if errors.Is(err, trust.ErrNotEnrolled) {
			next = enrolmentPoll
		} else if c.Result != "ok" && len(e.cfg.Hub.FallbackURLs) > 0 {
			next = hubFailoverPoll // another hub may be in reach: look again soon
		}
		if !service.Sleep(ctx, next) {
			return nil
		}
	}
}

// EdgeEnrol gets the box at dataDir an identity from the hub.
func EdgeEnrol(ctx context.Context, hubURL, code, dataDir string) (*trust.Identity, error) {
	return trust.Enroll(ctx, hubURL, code, IdentityDir(dataDir))
}

// enrolledPart is a part of the box that presents the box's certificate, and so can be
// built only once the box is enrolled: the forwarder and the live stream's publisher
// (the DICOM receiver, which needs no enrolment, is set at once). Its service builds it on its first enrolled start and keeps it
// across the supervisor's restarts, because it registers metrics and holds
// connections; the status API and the operator's actions reach it through get.
type enrolledPart[T any] struct {
	mu    sync.Mutex
	part  T
	built bool
}

// get returns the part, or false while it is not built yet.
func (p *enrolledPart[T]) get() (T, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.part, p.built
}

// set gives the part at once, for a part that does not need the identity (the DICOM
// receiver).
func (p *enrolledPart[T]) set(part T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.part, p.built = part, true
}

// build returns the part, building it with build on the first call once the box in
// dataDir is enrolled. Until then it waits with h degraded: reason tells the crew what
// waits and why. It returns ctx's error when ctx ends first, and build's error (the
// part stays unbuilt, so the supervisor's restart tries again).
func (p *enrolledPart[T]) build(ctx context.Context, h *service.Health, dataDir, reason string, build func(*trust.Identity) (T, error)) (T, error) {
	if part, ok := p.get(); ok {
		return part, nil
	}
	var none T
	id, err := waitForIdentity(ctx, h, dataDir, reason)
	if err != nil {
		return none, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.built {
		return p.part, nil
	}
	part, err := build(id)
	if err != nil {
		return none, err
	}
	p.part, p.built = part, true
	return part, nil
}

// buildNow builds the part at once, for a configuration that works without the
// identity (a live stream to the hospital's own WHIP server).
func (p *enrolledPart[T]) buildNow(build func() (T, error)) (T, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.built {
		return p.part, nil
	}
	part, err := build()
	if err != nil {
		var none T
		return none, err
	}
	p.part, p.built = part, true
	return part, nil
}

// enrolmentPoll is how often a part waiting for enrolment looks for the identity, so
// that 'lifeline edge enroll' takes effect on a running box without a restart.
const enrolmentPoll = 2 * time.Second

// waitForIdentity returns the identity of the box in dataDir, waiting (degraded, with
// reason) until the box is enrolled. It returns ctx's error when ctx ends first.
func waitForIdentity(ctx context.Context, h *service.Health, dataDir, reason string) (*trust.Identity, error) {
	for {
		id, err := trust.LoadIdentity(IdentityDir(dataDir))
		switch {
		case err == nil:
			return id, nil
		case !errors.Is(err, trust.ErrNotEnrolled):
			return nil, fmt.Errorf("box identity in %s: %w", IdentityDir(dataDir), err)
		}
		h.Degraded(reason, err)
		t := time.NewTimer(enrolmentPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
