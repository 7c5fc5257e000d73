package jt808

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// SessionConfig configures a terminal's session with a platform. The zero value of
// every duration means its default.
type SessionConfig struct {
	Edition Edition
	Version byte   // 2019 protocol version byte; 0 means 1
	Phone   string // the terminal's phone number / ID, decimal digits
	// AuthCode from an earlier registration; empty makes Open register first.
	AuthCode string
	Register Register // sent when registering
	IMEI     string   // 2019 authentication
	Software string   // 2019 authentication

	// ResponseTimeout bounds the wait for a platform's answer (JT/T 808 parameter
	// 0x0002, default 10 s).
	ResponseTimeout time.Duration
	// Heartbeat is sent when nothing else was sent for this long; default 30 s.
	Heartbeat time.Duration
	// CommandBuffer is how many platform commands wait for the caller; more are
	// refused (answered with a failure) and counted. Default 32.
	CommandBuffer int
	Log           *slog.Logger
}

func (c *SessionConfig) populate() error {
	if c.Edition != Edition2013 && c.Edition != Edition2019 {
		return fmt.Errorf("jt808: edition %d: want 2013 or 2019", c.Edition)
	}
	if c.Edition == Edition2019 && c.Version == 0 {
		c.Version = 1
	}
	if _, err := putBCD(nil, c.Phone, phoneDigits(c.Edition)/2); err != nil || c.Phone == "" {
		return fmt.Errorf("jt808: terminal phone %q: want 1 to %d digits", c.Phone, phoneDigits(c.Edition))
	}
	if c.ResponseTimeout <= 0 {
		c.ResponseTimeout = 10 * time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 30 * time.Second
	}
	if c.CommandBuffer <= 0 {
		c.CommandBuffer = 32
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// SessionStats counts what went wrong on a session; every bad input is counted and
// logged and the session keeps going.
type SessionStats struct {
	FramesIn, FramesOut int64
	BadFrames           int64 // check code, escape, length, header
	NoiseBytes          int64 // bytes outside any frame
	UnknownMessages     int64 // message IDs this terminal does not handle
	CommandsDropped     int64 // commands refused because the caller was not taking them
	Timeouts            int64 // answers that did not come in time
	Resent              int64 // sub-packages sent again on 0x8003
}

// Session is one authenticated TCP session of a terminal with its platform. Open
// registers (when there is no code yet) and authenticates; then Call sends a message
// and waits for the platform's general response, and platform commands arrive on
// Commands for the caller to act on and answer.
type Session struct {
	cfg  SessionConfig
	conn net.Conn

	writeMu  sync.Mutex
	serial   uint16
	lastSent time.Time
	split    []Message // the last message sent in parts, for 0x8003

	mu       sync.Mutex
	waiters  map[waitKey]chan Message
	commands chan Message
	auth     string

	stats struct {
		framesIn, framesOut, bad, noise, unknown, dropped, timeouts, resent atomic.Int64
	}
	done    chan struct{}
	errOnce sync.Once
	err     error
	wg      sync.WaitGroup
}

type waitKey struct {
	id     uint16 // the answer's ID: 0x8001 or 0x8100
	serial uint16 // the serial it answers
}

// ErrRefused is returned when the platform answers with a result other than success.
var ErrRefused = errors.New("jt808: platform refused")

// ErrNoAnswer is returned when the platform did not answer within the response timeout.
var ErrNoAnswer = errors.New("jt808: no answer from the platform")

// Open runs a session over conn (already connected): register if cfg has no
// AuthCode, then authenticate. On error conn is closed.
func Open(ctx context.Context, conn net.Conn, cfg SessionConfig) (*Session, error) {
	if err := cfg.populate(); err != nil {
		conn.Close()
		return nil, err
	}
	s := &Session{
		cfg: cfg, conn: conn, auth: cfg.AuthCode,
		waiters:  map[waitKey]chan Message{},
		commands: make(chan Message, cfg.CommandBuffer),
		done:     make(chan struct{}),
	}
	s.wg.Add(2)
	go s.readLoop()
	go s.heartbeatLoop()
	if err := s.login(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Session) login(ctx context.Context) error {
	if s.auth == "" {
		ans, err := s.call(ctx, IDRegister, s.cfg.Register.Marshal(s.cfg.Edition), IDRegisterResponse)
		if err != nil {
			return fmt.Errorf("jt808: register: %w", err)
		}
		rr, err := ParseRegisterResult(ans.Body)
		if err != nil {
			return fmt.Errorf("jt808: register: %w", err)
		}
		if rr.Result != 0 {
			return fmt.Errorf("jt808: register: %w with result %d", ErrRefused, rr.Result)
		}
		s.mu.Lock()
		s.auth = rr.AuthCode
		s.mu.Unlock()
	}
	a := Authenticate{Code: s.AuthCode(), IMEI: s.cfg.IMEI, Software: s.cfg.Software}
	if _, err := s.Call(ctx, IDAuthenticate, a.Marshal(s.cfg.Edition)); err != nil {
		return fmt.Errorf("jt808: authenticate: %w", err)
	}
	return nil
}

// AuthCode is the authentication code in use; store it after the first registration
// so the terminal authenticates directly next time.
func (s *Session) AuthCode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auth
}

// Call sends a message and waits for the platform's general response (0x8001). A
// result other than success is ErrRefused; no answer in time is ErrNoAnswer. A body
// larger than MaxBody goes in sub-packages, answered for the first one's serial.
func (s *Session) Call(ctx context.Context, id uint16, body []byte) (GeneralResponse, error) {
	ans, err := s.call(ctx, id, body, IDPlatformResponse)
	if err != nil {
		return GeneralResponse{}, err
	}
	g, err := ParseGeneralResponse(ans.Body)
	if err != nil {
		return g, err
	}
	if g.Result != ResultOK {
		return g, fmt.Errorf("%w 0x%04x with result %d", ErrRefused, id, g.Result)
	}
	return g, nil
}

func (s *Session) call(ctx context.Context, id uint16, body []byte, answer uint16) (Message, error) {
	ch := make(chan Message, 1)
	var key waitKey
	serial, err := s.send(id, body, func(first uint16) {
		key = waitKey{answer, first}
		s.mu.Lock()
		s.waiters[key] = ch
		s.mu.Unlock()
	})
	defer func() {
		s.mu.Lock()
		delete(s.waiters, key)
		s.mu.Unlock()
	}()
	if err != nil {
		return Message{}, err
	}
	t := time.NewTimer(s.cfg.ResponseTimeout)
	defer t.Stop()
	select {
	case m := <-ch:
		return m, nil
	case <-t.C:
		s.stats.timeouts.Add(1)
		s.cfg.Log.Warn("jt808: no answer from the platform", "message", fmt.Sprintf("0x%04x", id), "serial", serial, "waited", s.cfg.ResponseTimeout)
		return Message{}, fmt.Errorf("%w to 0x%04x serial %d within %s", ErrNoAnswer, id, serial, s.cfg.ResponseTimeout)
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case <-s.done:
		return Message{}, s.Err()
	}
}

// Send sends a message that expects no answer (0x0001, 0x0201, 0x0104) and returns
// its serial.
func (s *Session) Send(id uint16, body []byte) (uint16, error) { return s.send(id, body, nil) }

// Respond answers a platform command with a terminal general response (0x0001).
func (s *Session) Respond(cmd Message, result byte) error {
	_, err := s.Send(IDTerminalResponse, GeneralResponse{Serial: cmd.Serial, ID: cmd.ID, Result: result}.Marshal())
	return err
}

// send frames and writes the message (in parts when long). register, if set, is
// called with the first serial before anything is written, so an answer cannot
// outrun its waiter.
func (s *Session) send(id uint16, body []byte, register func(first uint16)) (uint16, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	first := s.serial
	m := Message{Header: Header{ID: id, Edition: s.cfg.Edition, Version: s.cfg.Version, Phone: s.cfg.Phone, Serial: first}, Body: body}
	parts := Split(m, 0)
	s.serial += uint16(len(parts))
	if register != nil {
		register(first)
	}
	if len(parts) > 1 {
		s.split = parts
	}
	for _, p := range parts {
		if err := s.writeLocked(p); err != nil {
			return first, err
		}
	}
	return first, nil
}

func (s *Session) writeLocked(m Message) error {
	f, err := Encode(m)
	if err != nil {
		return err
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.ResponseTimeout))
	if _, err := s.conn.Write(f); err != nil {
		err = fmt.Errorf("jt808: write 0x%04x to %s: %w", m.ID, s.conn.RemoteAddr(), err)
		s.fail(err)
		return err
	}
	s.stats.framesOut.Add(1)
	s.lastSent = time.Now()
	return nil
}

// Commands delivers the platform's commands (0x8103, 0x8104, 0x8201, 0x8202, 0x8300
// and any other platform message this package does not answer itself). The caller
// answers each (Respond, or Send of the specific answer).
func (s *Session) Commands() <-chan Message { return s.commands }

// Done is closed when the session ends (connection lost or Close).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	return SessionStats{
		FramesIn: s.stats.framesIn.Load(), FramesOut: s.stats.framesOut.Load(),
		BadFrames: s.stats.bad.Load(), NoiseBytes: s.stats.noise.Load(),
		UnknownMessages: s.stats.unknown.Load(), CommandsDropped: s.stats.dropped.Load(),
		Timeouts: s.stats.timeouts.Load(), Resent: s.stats.resent.Load(),
	}
}

// Close ends the session and waits for its goroutines.
func (s *Session) Close() error {
	s.fail(net.ErrClosed)
	s.wg.Wait()
	return nil
}

func (s *Session) fail(err error) {
	s.errOnce.Do(func() {
		s.err = err
		close(s.done)
		s.conn.Close()
	})
}

func (s *Session) heartbeatLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Heartbeat / 4)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.writeMu.Lock()
			idle := time.Since(s.lastSent)
			s.writeMu.Unlock()
			if idle >= s.cfg.Heartbeat {
				// The heartbeat's answer is not awaited: a platform that stops answering
				// shows in the Calls that time out.
				s.Send(IDHeartbeat, nil)
			}
		}
	}
}

func (s *Session) readLoop() {
	defer s.wg.Done()
	fr := NewFrameReader(s.conn)
	re := NewReassembler(ReassemblyLimits{})
	for {
		f, err := fr.Next()
		s.stats.noise.Store(int64(fr.Skipped))
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("jt808: platform %s closed the connection", s.conn.RemoteAddr())
			}
			s.fail(err)
			return
		}
		m, err := Decode(f)
		if err != nil {
			s.stats.bad.Add(1)
			s.cfg.Log.Warn("jt808: bad frame from the platform", "from", s.conn.RemoteAddr(), "err", err, "bytes", len(f))
			continue
		}
		s.stats.framesIn.Add(1)
		whole, done, err := re.Add(m, time.Now())
		if err != nil {
			s.stats.bad.Add(1)
			s.cfg.Log.Warn("jt808: sub-package refused", "err", err)
		}
		if done {
			s.dispatch(whole)
		}
	}
}

func (s *Session) dispatch(m Message) {
	switch m.ID {
	case IDPlatformResponse, IDRegisterResponse:
		r := &reader{b: m.Body, id: m.ID}
		serial := r.u16("serial")
		if r.err != nil {
			s.stats.bad.Add(1)
			s.cfg.Log.Warn("jt808: bad answer", "err", r.err)
			return
		}
		s.mu.Lock()
		ch := s.waiters[waitKey{m.ID, serial}]
		s.mu.Unlock()
		if ch == nil {
			s.cfg.Log.Debug("jt808: answer nobody waits for (late?)", "id", fmt.Sprintf("0x%04x", m.ID), "serial", serial)
			return
		}
		select {
		case ch <- m:
		default:
		}
	case IDResendRequest:
		s.resend(m)
	case IDSetParams, IDQueryParams, IDLocationQuery, IDTemporaryTracking, IDTextMessage:
		select {
		case s.commands <- m:
		default:
			s.stats.dropped.Add(1)
			s.cfg.Log.Warn("jt808: platform command dropped: the terminal is not taking commands", "id", fmt.Sprintf("0x%04x", m.ID))
			s.Respond(m, ResultFailure)
		}
	default:
		s.stats.unknown.Add(1)
		s.cfg.Log.Warn("jt808: message the terminal does not support", "id", fmt.Sprintf("0x%04x", m.ID), "serial", m.Serial)
		s.Respond(m, ResultUnsupported)
	}
}

func (s *Session) resend(m Message) {
	q, err := ParseResendRequest(m.Body, m.Edition)
	if err != nil {
		s.stats.bad.Add(1)
		s.cfg.Log.Warn("jt808: bad re-request", "err", err)
		return
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if len(s.split) == 0 || s.split[0].Serial != q.Serial {
		s.cfg.Log.Warn("jt808: re-request for a message no longer held", "serial", q.Serial)
		return
	}
	for _, id := range q.IDs {
		if id >= 1 && int(id) <= len(s.split) {
			if s.writeLocked(s.split[id-1]) == nil {
				s.stats.resent.Add(1)
			}
		}
	}
}
