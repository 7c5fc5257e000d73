package jt808

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Report is one location a Platform received, as it logs it (one JSON line each).
type Report struct {
	Received   time.Time `json:"received"`
	Phone      string    `json:"phone"`
	Message    string    `json:"message"`         // "0x0200", "0x0201" or "0x0704"
	Batch      string    `json:"batch,omitempty"` // 0x0704: "normal" or "blind-zone"
	Serial     uint16    `json:"serial"`
	Time       time.Time `json:"time"`
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	Altitude   int16     `json:"altitude_m"`
	SpeedKmh   float64   `json:"speed_kmh"`
	Course     uint16    `json:"course"`
	Alarm      uint32    `json:"alarm"`
	Status     uint32    `json:"status"`
	Satellites *byte     `json:"satellites,omitempty"`
	Signal     *byte     `json:"signal,omitempty"`
	MileageKm  *float64  `json:"mileage_km,omitempty"`
	Unknown    int       `json:"unknown_items,omitempty"`
}

// PlatformConfig configures a Platform.
type PlatformConfig struct {
	// AuthCode is handed out on registration and required on authentication;
	// empty means "LIFELINE".
	AuthCode string
	// ReportLog receives every report as a JSON line; nil logs none.
	ReportLog io.Writer
	// OnReport, if set, sees every report (tests).
	OnReport func(Report)
	// OnMessage, if set, sees every decoded message from a terminal (tests).
	OnMessage func(Message)
	Log       *slog.Logger
}

// Platform is a small JT/T 808 platform: it accepts registrations and
// authentications of either edition, answers every terminal message, logs reports,
// asks for missing sub-packages with 0x8003, and can send commands (0x8103, 0x8104,
// 0x8201, 0x8202, 0x8300) to a connected terminal. It is the dispatch simulator and
// the tests' peer.
type Platform struct {
	cfg   PlatformConfig
	mute  atomic.Bool
	logMu sync.Mutex

	mu        sync.Mutex
	terminals map[string]*platformConn
	wg        sync.WaitGroup
}

type platformConn struct {
	conn    net.Conn
	edition Edition
	version byte
	phone   string
	authed  bool
	writeMu sync.Mutex
	serial  uint16
}

// NewPlatform returns a platform; call Serve.
func NewPlatform(cfg PlatformConfig) *Platform {
	if cfg.AuthCode == "" {
		cfg.AuthCode = "LIFELINE"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Platform{cfg: cfg, terminals: map[string]*platformConn{}}
}

// Mute makes the platform stop answering (it still reads and logs): a platform that
// never answers, for tests.
func (p *Platform) Mute(on bool) { p.mute.Store(on) }

// Serve accepts terminals on ln until ctx ends, then closes every connection and
// returns once their goroutines are done.
func (p *Platform) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		p.mu.Lock()
		for _, t := range p.terminals {
			t.conn.Close()
		}
		p.mu.Unlock()
	})
	defer stop()
	defer p.wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("jt808 platform: accept on %s: %w", ln.Addr(), err)
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serveConn(ctx, c)
		}()
	}
}

// Terminals lists the phone numbers of authenticated terminals now connected.
func (p *Platform) Terminals() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for ph, t := range p.terminals {
		if t.authed {
			out = append(out, ph)
		}
	}
	return out
}

// ErrNoTerminal means no connected terminal has the phone number.
var ErrNoTerminal = errors.New("jt808 platform: terminal not connected")

// Send sends a platform message to the connected terminal phone, in the terminal's
// edition, and returns its serial. The body must be encoded for that edition (see
// Edition).
func (p *Platform) Send(phone string, id uint16, body []byte) (uint16, error) {
	p.mu.Lock()
	t := p.terminals[phone]
	p.mu.Unlock()
	if t == nil {
		return 0, fmt.Errorf("%w: %s", ErrNoTerminal, phone)
	}
	return t.send(id, body)
}

// Edition is the edition the connected terminal phone speaks.
func (p *Platform) Edition(phone string) (Edition, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.terminals[phone]
	if t == nil {
		return 0, fmt.Errorf("%w: %s", ErrNoTerminal, phone)
	}
	return t.edition, nil
}

func (t *platformConn) send(id uint16, body []byte) (uint16, error) {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	serial := t.serial
	t.serial++
	f, err := Encode(Message{Header: Header{ID: id, Edition: t.edition, Version: t.version, Phone: t.phone, Serial: serial}, Body: body})
	if err != nil {
		return serial, err
	}
	t.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = t.conn.Write(f)
	return serial, err
}

func (p *Platform) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	t := &platformConn{conn: c}
	fr := NewFrameReader(c)
	re := NewReassembler(ReassemblyLimits{})
	defer func() {
		p.mu.Lock()
		if t.phone != "" && p.terminals[t.phone] == t {
			delete(p.terminals, t.phone)
		}
		p.mu.Unlock()
	}()
	for ctx.Err() == nil {
		f, err := fr.Next()
		if err != nil {
			return
		}
		m, err := Decode(f)
		if err != nil {
			p.cfg.Log.Warn("jt808 platform: bad frame", "from", c.RemoteAddr(), "err", err)
			continue
		}
		if t.phone == "" {
			t.edition, t.version, t.phone = m.Edition, m.Version, m.Phone
			p.mu.Lock()
			if old := p.terminals[t.phone]; old != nil {
				old.conn.Close() // the terminal reconnected; the old session is dead
			}
			p.terminals[t.phone] = t
			p.mu.Unlock()
		}
		whole, done, err := re.Add(m, time.Now())
		if err != nil {
			p.cfg.Log.Warn("jt808 platform: sub-package refused", "err", err)
			continue
		}
		if !done {
			if m.Packet == m.Packets {
				p.requestMissing(t, re)
			}
			continue
		}
		if p.cfg.OnMessage != nil {
			p.cfg.OnMessage(whole)
		}
		p.handle(t, whole)
	}
}

func (p *Platform) requestMissing(t *platformConn, re *Reassembler) {
	for _, inc := range re.Missing() {
		if inc.Phone == t.phone && !p.mute.Load() {
			t.send(IDResendRequest, ResendRequest{Serial: inc.FirstSerial, IDs: inc.Missing}.Marshal(t.edition))
		}
	}
}

func (p *Platform) answer(t *platformConn, m Message, result byte) {
	if p.mute.Load() {
		return
	}
	t.send(IDPlatformResponse, GeneralResponse{Serial: m.Serial, ID: m.ID, Result: result}.Marshal())
}

func (p *Platform) handle(t *platformConn, m Message) {
	switch m.ID {
	case IDRegister:
		if !p.mute.Load() {
			t.send(IDRegisterResponse, RegisterResult{Serial: m.Serial, Result: 0, AuthCode: p.cfg.AuthCode}.Marshal())
		}
	case IDAuthenticate:
		a, err := ParseAuthenticate(m.Body, m.Edition)
		if err != nil || a.Code != p.cfg.AuthCode {
			p.cfg.Log.Warn("jt808 platform: authentication refused", "phone", m.Phone, "err", err)
			p.answer(t, m, ResultFailure)
			return
		}
		p.mu.Lock()
		t.authed = true
		p.mu.Unlock()
		p.answer(t, m, ResultOK)
	case IDLocation:
		l, err := ParseLocation(m.Body)
		p.logLocation(m, "", l, err)
		p.answer(t, m, resultOf(err))
	case IDLocationAnswer:
		a, err := ParseLocationAnswer(m.Body)
		p.logLocation(m, "", a.Location, err)
	case IDBatchLocation:
		b, err := ParseBatchLocation(m.Body)
		kind := "normal"
		if b.Type == BatchBlindZone {
			kind = "blind-zone"
		}
		for _, it := range b.Items {
			l, err := ParseLocation(it)
			p.logLocation(m, kind, l, err)
		}
		p.answer(t, m, resultOf(err))
	case IDHeartbeat, IDParamsResponse:
		p.answer(t, m, ResultOK)
	case IDTerminalResponse:
	default:
		p.answer(t, m, ResultUnsupported)
	}
}

func resultOf(err error) byte {
	if err != nil {
		return ResultBadMessage
	}
	return ResultOK
}

func (p *Platform) logLocation(m Message, batch string, l Location, err error) {
	if err != nil {
		p.cfg.Log.Warn("jt808 platform: bad location", "phone", m.Phone, "id", fmt.Sprintf("0x%04x", m.ID), "err", err)
		return
	}
	r := Report{
		Received: time.Now().UTC(), Phone: m.Phone, Message: fmt.Sprintf("0x%04x", m.ID), Batch: batch, Serial: m.Serial,
		Time: l.Time.UTC(), Lat: l.Lat, Lon: l.Lon, Altitude: l.Altitude, SpeedKmh: l.SpeedKmh, Course: l.Course,
		Alarm: l.Alarm, Status: l.Status, Unknown: l.Unknown,
	}
	if l.HasSatellites {
		r.Satellites = &l.Satellites
	}
	if l.HasSignal {
		r.Signal = &l.Signal
	}
	if l.HasMileage {
		r.MileageKm = &l.MileageKm
	}
	if p.cfg.ReportLog != nil {
		b, _ := json.Marshal(r)
		p.logMu.Lock()
		p.cfg.ReportLog.Write(append(b, '\n'))
		p.logMu.Unlock()
	}
	if p.cfg.OnReport != nil {
		p.cfg.OnReport(r)
	}
}
