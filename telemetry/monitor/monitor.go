// Package monitor is the box's reader service for one patient monitor: it opens the
// configured serial port (or listens for / dials an HL7 MLLP connection), detects the
// protocol when asked to, runs the protocol driver, rebuilds a steady time axis for the
// waveforms, publishes everything on the telemetry bus, and keeps going through pulled
// cables, re-plugged USB adapters (found again by VID/PID/serial) and silent monitors,
// which it reports as device events within SilenceLimit.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/hardware/serialport"
	"lifeline/internal/service"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
	"lifeline/telemetry/protocols"
)

// Config configures one monitor reader.
type Config struct {
	Name string // shown in status, logs, metrics and as the bus source; default the port
	// Port is a serial device path, "tcp://HOST:PORT" (the box listens for the monitor's
	// MLLP connection) or "tcp-connect://HOST:PORT" (the box dials it).
	Port string
	// Protocol is a driver's Protocol() name, or "auto" to detect it on a serial port.
	Protocol string
	// Drivers are the protocol drivers to pick from or detect among; nil: one of every
	// protocol in telemetry/protocols.
	Drivers []telemetry.Driver
	Bus     *telemetry.Bus
	Log     *slog.Logger
	// Registerer receives lifeline_telemetry_* metrics labelled by monitor; nil: none.
	Registerer prometheus.Registerer
	// SilenceLimit is how long without a valid frame before the monitor is reported
	// silent (default 2.5 s, so that with the watchdog's 100 ms resolution the event is
	// out within 3 s of the last frame). On a tcp:// port it is also how long a
	// session must have been silent before a new connection may take its place.
	SilenceLimit time.Duration
	// RetryMin/RetryMax bound the back-off between attempts to (re)open the port.
	RetryMin, RetryMax time.Duration
	// WriteTimeout bounds every write to the monitor (default 2 s).
	WriteTimeout time.Duration
	// Lister enumerates serial ports to find a re-plugged USB adapter (default the real one).
	Lister serialport.Lister
	// Allow lists the addresses a monitor may connect from on a tcp:// port the box
	// listens on (ParseAllow reads them); every other connection is refused, counted
	// and shown in the status. Empty admits this machine only, and New refuses a
	// listener beyond loopback without a list: whoever connects speaks for the patient.
	Allow []netip.Prefix
}

// State of a reader.
type State string

// States.
const (
	StateStarting     State = "starting"
	StateOpening      State = "opening"
	StateDetecting    State = "detecting"
	StateListening    State = "listening" // waiting for the monitor's TCP connection
	StateConnected    State = "connected"
	StateSilent       State = "silent"
	StateDisconnected State = "disconnected"
	StateStopped      State = "stopped"
)

// Status is a reader's state for GET /api/v1/status and the crew's status page.
type Status struct {
	Name       string    `json:"name"`
	Port       string    `json:"port"`   // as configured
	Device     string    `json:"device"` // the path actually open (differs after a USB re-find)
	Protocol   string    `json:"protocol"`
	State      State     `json:"state"`
	Since      time.Time `json:"since"`
	LastFrame  time.Time `json:"last_frame,omitzero"`
	Frames     uint64    `json:"frames"`
	Events     uint64    `json:"events"`
	BadBytes   uint64    `json:"bad_bytes"`
	Reconnects uint64    `json:"reconnects"`
	USB        string    `json:"usb,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	// Refused counts connections to a tcp:// port that were turned away: from an
	// address not allowed, or while a monitor was connected and sending.
	Refused       uint64    `json:"refused"`
	LastRefused   string    `json:"last_refused,omitempty"` // who, and why
	LastRefusedAt time.Time `json:"last_refused_at,omitzero"`
}

// Reader reads one monitor. Create with New, run with Run (or under a supervisor as
// Service()); it reports its own health.
type Reader struct {
	cfg      Config
	log      *slog.Logger
	endpoint telemetry.Endpoint
	health   *service.Health // set by Run; nil when no one asked

	mu       sync.Mutex
	status   Status
	reportMu sync.Mutex // serialises health reports (report)
	usb      serialport.USBID

	frames, events, badBytes, reconnects, refused atomic.Uint64
	lastFrame                                     atomic.Int64 // unix nanos

	mFrames, mBad, mEvents, mReconnects prometheus.Counter
	mUp, mLast                          prometheus.Gauge
	refusals                            *refusals
}

// New checks cfg and returns a reader.
func New(cfg Config) (*Reader, error) {
	ep, err := telemetry.ParseEndpoint(cfg.Port)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	if cfg.Bus == nil {
		return nil, errors.New("monitor: no bus")
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Port
	}
	if cfg.Protocol == "" {
		cfg.Protocol = protocols.Auto
	}
	if cfg.Drivers == nil {
		cfg.Drivers = protocols.Drivers(cfg.Log)
	}
	if cfg.Protocol != protocols.Auto && driverFor(cfg.Drivers, cfg.Protocol) == nil {
		return nil, fmt.Errorf("monitor %s: protocol %q is not one of %v", cfg.Name, cfg.Protocol, names(cfg.Drivers))
	}
	if err := CheckAllow(ep, cfg.Allow); err != nil {
		return nil, fmt.Errorf("monitor %s: %w", cfg.Name, err)
	}
	if ep.Network() {
		if cfg.Protocol != protocols.Auto && cfg.Protocol != hl7.Protocol.Name {
			return nil, fmt.Errorf("monitor %s: a tcp port carries HL7/MLLP only, not %q", cfg.Name, cfg.Protocol)
		}
		if driverFor(cfg.Drivers, hl7.Protocol.Name) == nil {
			return nil, fmt.Errorf("monitor %s: a tcp port needs the hl7 driver", cfg.Name)
		}
	}
	if cfg.SilenceLimit <= 0 {
		cfg.SilenceLimit = 2500 * time.Millisecond
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 2 * time.Second
	}
	if cfg.Lister == nil {
		cfg.Lister = serialport.Ports
	}
	r := &Reader{cfg: cfg, endpoint: ep, log: telemetry.DiscardLogger(cfg.Log).With("monitor", cfg.Name, "port", cfg.Port)}
	r.status = Status{Name: cfg.Name, Port: cfg.Port, Protocol: cfg.Protocol, State: StateStarting, Since: time.Now()}
	if err := r.registerMetrics(); err != nil {
		return nil, err
	}
	return r, nil
}

// registerMetrics makes the reader's lifeline_telemetry_* metrics, labelled by
// monitor, and registers them when the config has a registerer.
func (r *Reader) registerMetrics() error {
	labels := prometheus.Labels{"monitor": r.cfg.Name}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	}
	r.mFrames = counter("lifeline_telemetry_frames_total", "Valid protocol frames/messages read from the monitor.")
	r.mBad = counter("lifeline_telemetry_skipped_bytes_total", "Bytes skipped as noise, bad checksum or unparseable.")
	r.mEvents = counter("lifeline_telemetry_events_total", "Numerics, wave blocks, alarms and device events published.")
	r.mReconnects = counter("lifeline_telemetry_reconnects_total", "Times the port was lost and opened again.")
	r.mUp = gauge("lifeline_telemetry_monitor_up", "1 while the monitor sends valid frames, 0 when silent or disconnected.")
	r.mLast = gauge("lifeline_telemetry_last_frame_timestamp_seconds", "Unix time of the last valid frame.")
	r.refusals = newRefusals(r.cfg.Name)
	if r.cfg.Registerer == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{r.mFrames, r.mBad, r.mEvents, r.mReconnects, r.mUp, r.mLast, r.refusals.metric} {
		if err := r.cfg.Registerer.Register(c); err != nil {
			return fmt.Errorf("monitor %s: register metrics: %w", r.cfg.Name, err)
		}
	}
	return nil
}

func driverFor(ds []telemetry.Driver, proto string) telemetry.Driver {
	for _, d := range ds {
		if d.Protocol() == proto {
			return d
		}
	}
	return nil
}

func names(ds []telemetry.Driver) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Protocol())
	}
	return out
}

// Status returns a snapshot of the reader's state and counters.
func (r *Reader) Status() Status {
	r.mu.Lock()
	s := r.status
	r.mu.Unlock()
	s.Frames, s.Events, s.BadBytes, s.Reconnects = r.frames.Load(), r.events.Load(), r.badBytes.Load(), r.reconnects.Load()
	s.Refused = r.refused.Load()
	if ns := r.lastFrame.Load(); ns != 0 {
		s.LastFrame = time.Unix(0, ns)
	}
	return s
}

// setState records the reader's state and reports it as the service's health.
func (r *Reader) setState(st State, err error) {
	r.mu.Lock()
	if r.status.State != st {
		r.status.State, r.status.Since = st, time.Now()
	}
	if err != nil {
		r.status.LastError = err.Error()
	}
	up := 0.0
	if st == StateConnected {
		up = 1
	}
	r.mUp.Set(up)
	r.mu.Unlock()
	r.report(err)
}

// report tells the reader's health (if anyone asked) its current state. Reports are
// made one at a time from a fresh snapshot, so that a refusal noted from the accepting
// goroutine cannot overwrite a newer state with an older one.
func (r *Reader) report(err error) {
	r.reportMu.Lock()
	defer r.reportMu.Unlock()
	r.mu.Lock()
	h := r.health
	r.mu.Unlock()
	if h != nil {
		r.reportHealth(h, r.Status(), err)
	}
}

// quiet is how long the monitor has sent no valid frame.
func (r *Reader) quiet() time.Duration {
	ns := r.lastFrame.Load()
	if ns == 0 {
		return 0
	}
	return time.Since(time.Unix(0, ns))
}

func (r *Reader) setDevice(device, protocol string) {
	r.mu.Lock()
	r.status.Device, r.status.Protocol = device, protocol
	if !r.usb.IsZero() {
		r.status.USB = r.usb.String()
	}
	r.mu.Unlock()
}

// publish sends a device event from the reader itself.
func (r *Reader) device(st telemetry.DeviceState, detail string) {
	r.events.Add(1)
	r.mEvents.Inc()
	r.cfg.Bus.Publish(r.cfg.Name, &telemetry.DeviceEvent{State: st, Detail: detail, ReceiveTime: time.Now()})
}

// Service returns the reader as a service named "monitor " and its name, with its
// Status as the service's details, for the appliance's supervisor.
func (r *Reader) Service() service.Service {
	return service.Service{Name: "monitor " + r.cfg.Name, Run: r.Run, Status: func() any { return r.Status() }}
}

// Run reads the monitor until ctx ends; it returns nil then. Failures of the port are
// retried with back-off for as long as ctx lives; only ctx ends Run. It reports its
// health through h (nil: to no one): Ready while data flows, Degraded with what to
// check while the monitor is silent, unplugged or not recognised.
func (r *Reader) Run(ctx context.Context, h *service.Health) error {
	r.mu.Lock()
	r.health = h
	r.mu.Unlock()
	defer r.setState(StateStopped, nil)
	if r.endpoint.Network() {
		return r.runNetwork(ctx)
	}
	return r.runSerial(ctx)
}

// backoff waits d (doubling up to RetryMax for the next call) or until ctx ends.
func (r *Reader) backoff(ctx context.Context, d *time.Duration) bool {
	wait := *d
	*d = min(*d*2, r.cfg.RetryMax)
	return service.Sleep(ctx, wait)
}
