package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
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
	scpConfig := dimse.SCPConfig{AETitle: d.AETitle, CallingAEs: d.AllowedCalling, MaxAssociations: d.MaxAssociations}
	e.sup.Add(service.Service{
		Name: "dicom-spool",
		Run: func(ctx context.Context, h *service.Health) error {
			h.Ready(fmt.Sprintf("studies complete after %s without a new instance", d.QuietPeriod.Duration))
			return sp.Run(ctx)
		},
		Status: func() any { return sp.Status() },
	})

	var scp *dimse.SCP
	if !d.TLS {
		if scp, err = dimse.NewSCP(scpConfig, sp, e.log, e.reg); err != nil {
			return err
		}
	}
	var scpMu sync.Mutex
	e.sup.Add(service.Service{
		Name: "dicom-receiver",
		Run: func(ctx context.Context, h *service.Health) error {
			scpMu.Lock()
			if scp == nil {
				// DICOM TLS presents the box's own certificate, so it waits for enrolment.
				scpMu.Unlock()
				id, err := e.waitForIdentity(ctx, h, "DICOM TLS presents the box's certificate: enrol the box first")
				if id == nil {
					return err
				}
				scpMu.Lock()
				conf := id.ClientTLS()
				conf.ClientAuth = tls.NoClientCert
				scpConfig.TLS = conf
				if scp, err = dimse.NewSCP(scpConfig, sp, e.log, e.reg); err != nil {
					scpMu.Unlock()
					return err
				}
			}
			scpMu.Unlock()
			ln, err := net.Listen("tcp", d.Listen)
			if err != nil {
				return fmt.Errorf("dicom.listen %s: %w", d.Listen, err)
			}
			h.Ready(fmt.Sprintf("C-STORE SCP %s on %s", d.AETitle, ln.Addr()))
			return scp.Serve(ctx, ln)
		},
		Status: func() any {
			scpMu.Lock()
			defer scpMu.Unlock()
			if scp == nil {
				return nil
			}
			return scp.Status()
		},
	})

	e.sup.Add(e.forwarderService(sp))
	return nil
}

// forwarderService drains complete studies to the hub once the box is enrolled. The
// forwarder is made once, on the first enrolled start, because it registers metrics
// and keeps its connection across the supervisor's restarts.
func (e *Edge) forwarderService(sp *spool.Spool) service.Service {
	var mu sync.Mutex
	var fw *transfer.Forwarder
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
			id, err := e.waitForIdentity(ctx, h, "studies wait in the spool until the box is enrolled")
			if id == nil {
				return err
			}
			mu.Lock()
			if fw == nil {
				fw, err = transfer.NewForwarder(transfer.ForwarderConfig{
					HubURL:       e.cfg.Hub.URL,
					Parallel:     f.Parallel,
					Priorities:   rules,
					BandwidthCap: int64(f.MaxRateMbit * 1e6),
					RetryMax:     f.RetryMax.Duration,
				}, e.store, sp, id.ClientTLS(), e.log, e.reg)
			}
			mu.Unlock()
			if err != nil {
				return err
			}
			h.Ready("forwarding complete studies to " + e.cfg.Hub.URL)
			return fw.Run(ctx)
		},
		Status: func() any {
			mu.Lock()
			defer mu.Unlock()
			if fw == nil {
				return nil
			}
			return fw.Status()
		},
	}
}

// waitForIdentity returns the box's identity, waiting (degraded, with reason) until
// the box is enrolled. It returns nil when ctx ends first or the identity is unreadable.
func (e *Edge) waitForIdentity(ctx context.Context, h *service.Health, reason string) (*trust.Identity, error) {
	for {
		id, err := trust.LoadIdentity(IdentityDir(e.dataDir))
		switch {
		case err == nil:
			return id, nil
		case !errors.Is(err, trust.ErrNotEnrolled):
			return nil, err
		}
		h.Degraded(reason, err)
		t := time.NewTimer(2 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
	}
}
