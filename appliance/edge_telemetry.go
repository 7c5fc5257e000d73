package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"lifeline/internal/service"
	"lifeline/telemetry"
	"lifeline/telemetry/datex"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/intellivue"
	"lifeline/telemetry/monitor"
	"lifeline/telemetry/nonin"
	"lifeline/telemetry/record"
)

// addTelemetry starts a reader per configured monitor, all publishing on one vitals
// bus, and the recorder that keeps the whole pre-hospital record for the handover.
func (e *Edge) addTelemetry() error {
	e.bus = telemetry.NewBus(e.reg)
	e.mux.Handle("GET /api/v1/vitals", telemetry.VitalsHandler(e.bus))

	for i, m := range e.cfg.Monitor {
		log := e.log.With("monitor", m.Port)
		reader, err := monitor.New(monitor.Config{
			Name:       m.Port,
			Port:       m.Port,
			Protocol:   m.Protocol,
			Drivers:    monitorDrivers(e.log),
			Bus:        e.bus,
			Log:        log,
			Registerer: e.reg,
		})
		if err != nil {
			return fmt.Errorf("monitor %d (%s): %w", i+1, m.Port, err)
		}
		e.sup.Add(service.Service{
			Name:   "monitor " + m.Port,
			Run:    func(ctx context.Context, h *service.Health) error { return runMonitor(ctx, h, reader) },
			Status: func() any { return reader.Status() },
		})
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

// monitorDrivers lists every monitor protocol the box speaks, for auto-detection.
func monitorDrivers(l *slog.Logger) []telemetry.Driver {
	return []telemetry.Driver{
		hl7.New(l),
		nonin.New(l),
		datex.New(datex.Config{Logger: l}),
		intellivue.New(intellivue.Config{Logger: l}),
	}
}

// runMonitor runs a reader and mirrors its state into the service's health: a monitor
// that is silent or unplugged is a degraded service the crew must see.
func runMonitor(ctx context.Context, h *service.Health, reader *monitor.Reader) error {
	errc := make(chan error, 1)
	go func() { errc <- reader.Run(ctx) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		st := reader.Status()
		detail := fmt.Sprintf("%s on %s: %s", orAuto(st.Protocol), st.Device, st.State)
		switch st.State {
		case monitor.StateConnected:
			h.Ready(detail)
		case monitor.StateStarting, monitor.StateOpening, monitor.StateDetecting, monitor.StateListening:
			if st.LastError != "" {
				h.Degraded(detail, fmt.Errorf("%s", st.LastError))
			}
		default:
			h.Degraded(detail, errorOrNil(st.LastError))
		}
		select {
		case err := <-errc:
			return err
		case <-tick.C:
		}
	}
}

func orAuto(protocol string) string {
	if protocol == "" {
		return "detecting protocol"
	}
	return protocol
}

func errorOrNil(s string) error {
	if s == "" {
		return nil
	}
	return fmt.Errorf("%s", s)
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
