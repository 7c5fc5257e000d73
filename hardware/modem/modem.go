package modem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"lifeline/hardware/serialport"
	"lifeline/internal/service"
)

// Poll asks the module, with read-only commands only (they change no setting and
// leave the data connection alone), for the link's state: AT+CPIN?, AT+COPS?,
// AT+CREG?/AT+CEREG?/AT+C5GREG?, AT+QENG="servingcell", and AT+CSQ as the fallback
// measurement. A command the module refuses or does not answer in timeout leaves its
// part unknown; Poll fails only when the module answers nothing at all.
func Poll(ctx context.Context, at *ATPort, timeout time.Duration, now time.Time) (LinkQuality, error) {
	q := LinkQuality{Time: now}
	answered := 0
	run := func(cmd, prefix string) []string {
		lines, err := at.Exec(ctx, cmd, prefix, timeout)
		if err == nil || errors.Is(err, ErrCommand) {
			answered++
		}
		return lines
	}
	for _, l := range run("AT+CPIN?", "+CPIN:") {
		q.SIMState, q.SIMReady, _ = ParseCPIN(l)
	}
	if !q.SIMReady && q.SIMState == "" && answered > 0 {
		q.SIMState = "NOT INSERTED" // +CME ERROR: 10 and alike
	}
	for _, reg := range []struct{ cmd, prefix string }{{"AT+C5GREG?", "+C5GREG:"}, {"AT+CEREG?", "+CEREG:"}, {"AT+CREG?", "+CREG:"}} {
		for _, l := range run(reg.cmd, reg.prefix) {
			if st, err := ParseReg(l, reg.prefix); err == nil && st.Registered() {
				q.Registered = true
				q.Roaming = q.Roaming || st == RegRoaming
			}
		}
	}
	for _, l := range run("AT+COPS?", "+COPS:") {
		q.Operator, _, _ = ParseCOPS(l)
	}
	if cell, err := ParseQENG(run(`AT+QENG="servingcell"`, "+QENG:")); err == nil {
		q.Technology = cell.Technology
		q.RSRP, q.HasRSRP = cell.RSRP, cell.HasRSRP
		q.RSRQ, q.HasRSRQ = cell.RSRQ, cell.HasRSRQ
		q.SINR, q.HasSINR = cell.SINR, cell.HasSINR
		q.LTERSRP, q.HasLTERSRP = cell.LTERSRP, cell.HasLTERSRP
		if q.Operator == "" && cell.MCC != "" {
			q.Operator = cell.MCC + cell.MNC
		}
	}
	for _, l := range run("AT+CSQ", "+CSQ:") {
		q.RSSI, q.HasRSSI, _ = ParseCSQ(l)
	}
	if answered == 0 {
		return q, fmt.Errorf("modem: no answer to any command within %s each", timeout)
	}
	if !q.Registered {
		q.Technology = NoRadio
	}
	q.Bars = q.bars()
	return q, nil
}

// Config configures a Modem. Zero values mean the defaults in parentheses.
type Config struct {
	Port string           // the AT port (/dev/ttyUSB2 on RM5xx over USB)
	USB  serialport.USBID // found again by this after an unplug (learnt from Port)
	Baud int              // 115200 (USB ports ignore it)
	// Interval between polls (5 s).
	Interval time.Duration
	// CommandTimeout per command (2 s; AT+QENG answers in well under a second).
	CommandTimeout time.Duration
	OnQuality      func(LinkQuality)
	Log            *slog.Logger
	Lister         serialport.Lister
	Now            func() time.Time
}

// Modem polls a module's AT port and keeps the latest LinkQuality.
type Modem struct {
	cfg    Config
	device *serialport.Device

	mu      sync.Mutex
	latest  LinkQuality
	atStats ATStats
}

// New returns a Modem; call Run.
func New(cfg Config) *Modem {
	if cfg.Baud <= 0 {
		cfg.Baud = 115200
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Lister == nil {
		cfg.Lister = serialport.Ports
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Modem{cfg: cfg, device: &serialport.Device{
		Role: "modem AT port", Path: cfg.Port, Mode: serialport.Mode{Baud: cfg.Baud}, USB: cfg.USB, Lister: cfg.Lister,
	}}
}

// Latest is the last poll's result.
func (m *Modem) Latest() LinkQuality {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest
}

// Signal is the latest signal for JT/T 808's 0x30 item (0–31).
func (m *Modem) Signal() (byte, bool) { return m.Latest().Signal() }

// Status is the modem's entry in /api/v1/status details.
type Status struct {
	Port    string      `json:"port"`
	Quality LinkQuality `json:"quality"`
	AT      ATStats     `json:"at"`
}

// Status reports for the status page.
func (m *Modem) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Status{Port: m.cfg.Port, Quality: m.latest, AT: m.atStats}
}

// Run polls until ctx ends; a missing or silent module is retried, never fatal.
func (m *Modem) Run(ctx context.Context, h *service.Health) error {
	m.device.Serve(ctx, h, m.cfg.Log, func(p *serialport.Port) error { return m.poll(ctx, p, h) })
	return nil
}

func (m *Modem) poll(ctx context.Context, p *serialport.Port, h *service.Health) error {
	at := NewATPort(p, p)
	at.OnURC = func(l string) { m.cfg.Log.Debug("modem: URC", "line", l) }
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	silent := 0
	for {
		q, err := Poll(ctx, at, m.cfg.CommandTimeout, m.cfg.Now())
		m.mu.Lock()
		m.atStats = at.Stats()
		if err == nil {
			m.latest = q
		}
		m.mu.Unlock()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			silent++
			h.Degraded("modem does not answer on "+p.Path, err)
			if silent >= 3 {
				return err // reopen: the port may have been replaced
			}
		default:
			silent = 0
			if m.cfg.OnQuality != nil {
				m.cfg.OnQuality(q)
			}
			if q.Registered {
				h.Ready(q.String())
			} else {
				h.Degraded(q.String(), errors.New("no mobile network"))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
