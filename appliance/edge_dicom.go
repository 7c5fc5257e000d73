package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"lifeline/dicom/dimse"
	"lifeline/dicom/spool"
	"lifeline/dicom/transfer"
	"lifeline/internal/service"
	"lifeline/internal/trust"
)

// spoolDir holds the Part 10 files the box has received and not yet freed.
func spoolDir(dataDir string) string { return filepath.Join(dataDir, "spool") }

// addDICOM wires the clinic side of imaging: the C-STORE SCP writing into the spool,
// the spool's study-complete timer, and the forwarder that drains complete studies to
// the hub. The receiver works whether or not the box is enrolled or the hub is in
// reach; studies wait in the spool.
func (e *Edge) addDICOM() error {
	d := e.cfg.DICOM
	sp, err := spool.Open(spoolDir(e.dataDir), e.store, spool.Config{
		QuietPeriod:  d.QuietPeriod.Duration,
		MinFreeBytes: uint64(d.MinFreeMB) << 20,
	}, e.log)
	if err != nil {
		return err
	}
	e.spool = sp
	scpConfig := d.scpConfig()
	e.sup.Add(service.Service{
		Name: "dicom-spool",
		Run: func(ctx context.Context, h *service.Health) error {
			h.Ready(fmt.Sprintf("studies complete after %s without a new instance", d.QuietPeriod.Duration))
			return sp.Run(ctx)
		},
		Status: func() any { return sp.Status() },
	})

	if d.TLS {
		srv, err := e.openDICOMTLS()
		if err != nil {
			return err
		}
		scpConfig.TLS = srv.TLSConfig()
	}
	scp, err := dimse.NewSCP(scpConfig, sp, e.log, e.reg)
	if err != nil {
		return err
	}
	e.receiver.set(scp)
	e.sup.Add(e.receiverService(scp))
	e.sup.Add(e.forwarderService(sp))
	return nil
}

// receiverService serves C-STORE into the spool, with or without DICOM TLS, whether
// or not the box is enrolled: studies wait in the spool.
func (e *Edge) receiverService(scp *dimse.SCP) service.Service {
	d := e.cfg.DICOM
	return service.Service{
		Name: "dicom-receiver",
		Run: func(ctx context.Context, h *service.Health) error {
			ln, err := net.Listen("tcp", d.Listen)
			if err != nil {
				return fmt.Errorf("dicom.listen %s: %w", d.Listen, err)
			}
			h.Ready(fmt.Sprintf("C-STORE SCP %s on %s", d.AETitle, ln.Addr()))
			return scp.Serve(ctx, ln)
		},
		Status: func() any { return scp.Status() },
	}
}

// forwarderService drains complete studies to the hub once the box is enrolled. The
// forwarder is made once, on the first enrolled start, because it registers metrics
// and keeps its connection across the supervisor's restarts.
func (e *Edge) forwarderService(sp *spool.Spool) service.Service {
	f := e.cfg.Forward
	var rules []transfer.PriorityRule
	for _, m := range f.StatModality {
		rules = append(rules, transfer.PriorityRule{Modality: m, Priority: transfer.PriorityStat})
	}
	for _, ae := range f.StatCallingAE {
		rules = append(rules, transfer.PriorityRule{CallingAE: ae, Priority: transfer.PriorityStat})
	}
	return service.Service{
		Name: "forwarder",
		Run: func(ctx context.Context, h *service.Health) error {
			fw, err := e.forwarder.build(ctx, h, e.dataDir, "studies wait in the spool until the box is enrolled",
				func(id *trust.Identity) (*transfer.Forwarder, error) {
					return transfer.NewForwarder(transfer.ForwarderConfig{
						Hub:          forwardRoute{hubs: e.hubs, tls: id.ClientTLS()},
						Parallel:     f.Parallel,
						Priorities:   rules,
						BandwidthCap: int64(f.MaxRateMbit * 1e6),
						RetryMax:     f.RetryMax.Duration,
					}, e.store, sp, id.ClientTLS(), e.log, e.reg)
				})
			if err != nil {
				return err
			}
			h.Ready("forwarding studies to " + strings.Join(e.cfg.Hub.URLs(), ", then "))
			return fw.Run(ctx)
		},
		Status: func() any {
			if fw, ok := e.forwarder.get(); ok {
				return fw.Status()
			}
			return nil
		},
	}
}

// forwardRoute is the box's hub route as the forwarder sees it: each request goes to
// the hub the box uses now, and a hub the forwarder reached over neither QUIC nor TCP
// makes the route check the hubs at once and move to the next in reach, for the
// forwarder and the box's other parts alike.
type forwardRoute struct {
	hubs *hubRoute
	tls  *tls.Config
}

func (r forwardRoute) Current() string { return r.hubs.Current() }

func (r forwardRoute) Unreachable(hubURL string) {
	ctx, cancel := context.WithTimeout(r.hubs.life, forwardRouteCheck)
	defer cancel()
	r.hubs.unreachable(ctx, hubURL, r.tls)
}

// forwardRouteCheck bounds the check of the hubs a forwarder's report starts; the
// forwarder's requests wait for it meanwhile, as they would for the hub.
const forwardRouteCheck = 15 * time.Second

// DeadLettersPath lists the box's dead letters (GET); DeadLettersPath/{sop}/retry
// (POST) takes one off the list so that it is sent again.
const DeadLettersPath = "/api/v1/dead-letters"

// handleDeadLetters gives the operator the dead-letter list and the retry. A retry
// changes what the box does, so it must not be forgeable by a page from another site
// that the crew's browser happens to show: it requires a JSON body (which a cross-site
// form cannot send and a cross-site fetch cannot send without a CORS preflight the box
// never answers), and the browser's own Sec-Fetch-Site and Origin must say same-origin.
func (e *Edge) handleDeadLetters() {
	e.mux.HandleFunc("GET "+DeadLettersPath, func(w http.ResponseWriter, r *http.Request) {
		fw, ok := e.forwarder.get()
		if !ok {
			writeError(w, http.StatusServiceUnavailable, "the forwarder has not started: the box is not enrolled yet")
			return
		}
		dls, err := fw.DeadLetters()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if dls == nil {
			dls = []transfer.DeadLetter{}
		}
		writeJSON(w, http.StatusOK, dls)
	})
	retry := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sop := r.PathValue("sop")
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "a retry is a POST with Content-Type: application/json")
			return
		}
		fw, ok := e.forwarder.get()
		if !ok {
			writeError(w, http.StatusServiceUnavailable, "the forwarder has not started: the box is not enrolled yet")
			return
		}
		err := fw.Retry(sop)
		switch {
		case errors.Is(err, transfer.ErrNotDeadLettered):
			writeError(w, http.StatusNotFound, err.Error())
			return
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		e.log.Info("dead letter retried through the status API", "sop", sop, "remote", r.RemoteAddr, "user_agent", r.UserAgent())
		writeJSON(w, http.StatusOK, RetryAnswer{Retried: sop})
	})
	e.mux.Handle("POST "+DeadLettersPath+"/{sop}/retry", http.NewCrossOriginProtection().Handler(retry))
}

// RetryAnswer is the body of a successful POST DeadLettersPath/{sop}/retry.
type RetryAnswer struct {
	Retried string `json:"retried"` // the SOP Instance UID now queued again
}

// APIError is the body of every failed request to the box's /api/v1.
type APIError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, APIError{Error: msg})
}
