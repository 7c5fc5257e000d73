package appliance

import (
	"context"
	"fmt"
	"net/http"

	"lifeline/internal/service"
	"lifeline/telemetry"
	"lifeline/telemetry/monitor"
	"lifeline/telemetry/record"
)

// addTelemetry starts a reader per configured monitor, all publishing on one vitals
// bus, and the recorder that keeps the whole pre-hospital record for the handover.
func (e *Edge) addTelemetry() error {
	e.bus = telemetry.NewBus(e.reg)
	e.mux.Handle("GET /api/v1/vitals", telemetry.VitalsHandler(e.bus))

	for i, m := range e.cfg.Monitor {
		log := e.log.With("monitor", m.Port)
		allow, err := monitor.ParseAllow(m.Allow) // checked with the config already
		if err != nil {
			return fmt.Errorf("monitor %d (%s): allow: %w", i+1, m.Port, err)
		}
		reader, err := monitor.New(monitor.Config{
			Name:       m.Port,
			Port:       m.Port,
			Protocol:   m.Protocol,
			Allow:      allow,
			Bus:        e.bus,
			Log:        log,
			Registerer: e.reg,
		})
		if err != nil {
			return fmt.Errorf("monitor %d (%s): %w", i+1, m.Port, err)
		}
		// The reader reports its own health: silent, unplugged or unrecognised
		// monitors show as degraded services the crew must see.
		e.sup.Add(reader.Service())
	}

	rec, err := record.New(record.Config{Store: e.store, Bus: e.bus, Log: e.log.With("service", "recorder"), Registerer: e.reg})
	if err != nil {
		return err
	}
	e.sup.Add(service.Service{Name: "recorder", Run: func(ctx context.Context, h *service.Health) error {
		h.Ready("keeping every sample, numeric and alarm; at most the last second is lost on a power cut")
		return rec.Run(ctx)
	}})
	e.mux.Handle("/api/v1/record/", http.StripPrefix("/api/v1/record", record.Handler(e.store, e.ecgOptions, rec.Flush)))
	return nil
}

// ecgOptions names the institution on exported ECGs: the box's device ID, as the
// patient is not known to the box.
func (e *Edge) ecgOptions() record.ECGOptions {
	o := record.ECGOptions{Institution: "Lifeline"}
	if id := e.Identity(); id != nil {
		o.Institution = "Lifeline " + id.DeviceID
	}
	return o
}
