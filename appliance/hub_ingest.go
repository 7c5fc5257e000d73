package appliance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"lifeline/dicom/dimse"
	"lifeline/dicom/pacs"
	"lifeline/dicom/transfer"
	"lifeline/internal/service"
	"lifeline/internal/trust"
)

// hubArchiveDir is the embedded archive: every verified instance as a Part 10 file.
func hubArchiveDir(dataDir string) string { return filepath.Join(dataDir, "archive") }

// pacsDeliverer returns the PACS the config names, or nil for the embedded archive only.
func pacsDeliverer(cfg PACSSection) (pacs.Deliverer, error) {
	switch {
	case cfg.STOWURL != "":
		return pacs.NewSTOW(cfg.STOWURL, &http.Client{Timeout: 5 * time.Minute}), nil
	case cfg.DIMSE != "":
		return pacs.NewCStore(cfg.DIMSE, cfg.AETitle, dimse.SCUOptions{})
	}
	return nil, nil
}

// addIngest mounts the study upload protocol (dicom/TRANSFER.md) on the hub's public
// side behind the device check, and runs PACS delivery as a service.
func (h *Hub) addIngest() error {
	deliverer, err := pacsDeliverer(h.cfg.PACS)
	if err != nil {
		return fmt.Errorf("pacs: %w", err)
	}
	if err := sharedDirMounted(h.cfg.State); err != nil {
		return err
	}
	archive, scratch := ingestArchiveDir(h.dataDir, h.cfg.State), ""
	if h.cfg.State.SharedDir != "" {
		// Chunks are received on the hub's own disk: only verified ones go to the
		// shared directory, and a hub starting clears only its own scratch files.
		scratch = filepath.Join(h.dataDir, "ingest-scratch")
	}
	in, err := transfer.NewIngest(transfer.IngestConfig{
		// RequireDevice has already admitted the box and audited refusals.
		Authorize: func(r *http.Request) (string, error) {
			if id, ok := trust.DeviceFrom(r.Context()); ok {
				return id, nil
			}
			return "", errors.New("no enrolled device")
		},
		MaxAppendsPerBox: h.cfg.Ingest.MaxAppendsPerBox,
		MaxAppends:       h.cfg.Ingest.MaxAppends,
		ScratchDir:       scratch,
		DeliveryLease:    h.cfg.Ingest.DeliveryLease.Duration,
	}, h.state, archive, deliverer, h.audit, h.log.With("service", "ingest"), h.reg)
	if err != nil {
		return err
	}
	handler := h.RequireDevice(in.Handler())
	h.mux.Handle(transfer.UploadsPath, handler)
	h.mux.Handle(transfer.UploadsPath+"/", handler)
	h.mux.Handle(transfer.StudiesPath, handler)
	h.mux.Handle(transfer.StudiesPath+"/", handler)
	target := "embedded archive " + archive
	if deliverer != nil {
		target = deliverer.Target()
	}
	h.sup.Add(service.Service{
		Name: "ingest",
		Run: func(ctx context.Context, health *service.Health) error {
			defer in.Close()
			health.Ready("taking studies from boxes; delivering to " + target)
			return in.Run(ctx)
		},
		Status: func() any {
			st, err := in.Status()
			if err != nil {
				return map[string]string{"error": err.Error()}
			}
			return st
		},
	})
	return nil
}
