package rtsp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// Config tunes a connection; the zero value means the defaults.
type Config struct {
	// DialTimeout bounds connecting; default 10 s.
	DialTimeout time.Duration
	// ResponseTimeout bounds the wait for each response; default 10 s.
	ResponseTimeout time.Duration
	// MediaTimeout is how long the camera may send nothing while playing before
	// ReadPacket gives up; default 10 s.
	MediaTimeout time.Duration
	// UserAgent names the client to the camera; default "Lifeline".
	UserAgent string
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.ResponseTimeout <= 0 {
		c.ResponseTimeout = 10 * time.Second
	}
	if c.MediaTimeout <= 0 {
		c.MediaTimeout = 10 * time.Second
	}
	if c.UserAgent == "" {
		c.UserAgent = "Lifeline"
	}
	return c
}

// ErrUnauthorized is returned when the camera refuses the URL's credentials, or asks
// for some and the URL has none.
var ErrUnauthorized = errors.New("rtsp: camera refused the credentials")

// StatusError is a response other than 2xx to a request.
type StatusError struct {
	Method, URL string
	StatusCode  int
	Reason      string
}

// Error says which request got which answer.
func (e *StatusError) Error() string {
	return fmt.Sprintf("rtsp: %s %s: %d %s", e.Method, e.URL, e.StatusCode, truncate(e.Reason))
}

// defaultSessionTimeout is the session timeout when SETUP's answer names none
// (RFC 2326 §12.37).
const defaultSessionTimeout = 60 * time.Second

// Conn is one RTSP session with a camera, over one TCP connection that carries the
// requests, the responses and the interleaved RTP and RTCP. ReadPacket, Setup, Play
// and Close are for one goroutine; WriteRTCP may be called from any.
type Conn struct {
	cfg  Config
	conn net.Conn
	br   *bufio.Reader
	url  string // the request URL, without credentials
	cred *credentials

	wmu sync.Mutex // serialises writes

	mu          sync.Mutex // guards interrupted and the deadlines it overrides
	interrupted bool
	stopWatch   func() bool

	cseq           int
	session        string
	sessionTimeout time.Duration
	keepAlive      string // GET_PARAMETER, or OPTIONS when the camera offers no other
	lastKeepAlive  time.Time
	keepAliveCSeq  int
	desc           Description
	channels       map[byte]channel
	frame          [1 << 16]byte
	emptyLines     int
	unusable       int // frames dropped in a row by ReadPacket
}

// channel is what an interleaved channel number carries.
type channel struct {
	track *Track
	rtcp  bool
}

// Packet is what ReadPacket returns: an RTP packet or an RTCP compound packet of a
// track that was set up.
type Packet struct {
	Track *Track
	// RTP is the parsed packet on the track's RTP channel; nil for RTCP.
	RTP *rtp.Packet
	// RTCP is the raw compound packet on the track's RTCP channel.
	RTCP []byte
}

// Dial connects to the camera at rawURL (rtsp://[user:pass@]host[:port]/path),
// asks for its OPTIONS and DESCRIBE, authenticating if it asks, and returns the
// connection ready for Setup. ctx bounds the whole connection: cancelling it
// interrupts whatever the connection is doing.
func Dial(ctx context.Context, rawURL string, cfg Config) (*Conn, error) {
	cfg = cfg.withDefaults()
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a password
		}
		return nil, fmt.Errorf("rtsp: bad URL: %w", err)
	}
	if u.Scheme != "rtsp" {
		return nil, fmt.Errorf("rtsp: URL scheme %q, want rtsp", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("rtsp: URL %q has no host", u.Redacted())
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "554")
	}
	c := &Conn{cfg: cfg, keepAlive: "GET_PARAMETER", sessionTimeout: defaultSessionTimeout, channels: map[byte]channel{}}
	if u.User != nil {
		pass, _ := u.User.Password()
		c.cred = &credentials{user: u.User.Username(), pass: pass}
		u.User = nil
	}
	c.url = u.String()
	d := net.Dialer{Timeout: cfg.DialTimeout}
	if c.conn, err = d.DialContext(ctx, "tcp", host); err != nil {
		return nil, fmt.Errorf("rtsp: connect to %s: %w", host, err)
	}
	c.br = bufio.NewReaderSize(c.conn, MaxLineSize)
	c.stopWatch = context.AfterFunc(ctx, c.interrupt)
	if err := c.describe(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) describe() error {
	resp, err := c.do("OPTIONS", c.url, nil)
	var se *StatusError
	switch {
	case errors.As(err, &se):
		// A camera that does not answer OPTIONS may still DESCRIBE; keep-alives then
		// try GET_PARAMETER and fall back to OPTIONS as usual.
	case err != nil:
		return err
	default:
		if public := resp.Header.Get("Public"); public != "" && !strings.Contains(strings.ToUpper(public), "GET_PARAMETER") {
			c.keepAlive = "OPTIONS"
		}
	}
	resp, err = c.do("DESCRIBE", c.url, Header{"Accept": {"application/sdp"}})
	if err != nil {
		return err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/sdp") {
		return fmt.Errorf("rtsp: DESCRIBE %s: Content-Type %q, want application/sdp", c.url, truncate(ct))
	}
	base := c.url
	if b := resp.Header.Get("Content-Base"); b != "" {
		base = b
	} else if b := resp.Header.Get("Content-Location"); b != "" {
		base = b
	}
	c.desc, err = ParseDescription(resp.Body, base)
	if err != nil {
		return fmt.Errorf("rtsp: DESCRIBE %s: %w", c.url, err)
	}
	return nil
}

// Description returns the camera's tracks from its DESCRIBE answer.
func (c *Conn) Description() Description { return c.desc }

// Setup asks for track t of the Description over interleaved channels of this
// connection.
func (c *Conn) Setup(t *Track) error {
	n := byte(len(c.channels)) // two channels a track: RTP, then RTCP
	transport := fmt.Sprintf("RTP/AVP/TCP;unicast;interleaved=%d-%d", n, n+1)
	resp, err := c.do("SETUP", t.Control, Header{"Transport": {transport}})
	var se *StatusError
	if errors.As(err, &se) && se.StatusCode == 461 {
		return fmt.Errorf("%w: the camera does not send RTP over the RTSP connection (TCP), the only way the box takes it", err)
	}
	if err != nil {
		return err
	}
	rtpCh, rtcpCh, err := parseInterleaved(resp.Header.Get("Transport"))
	if err != nil {
		return fmt.Errorf("rtsp: SETUP %s: %w", t.Control, err)
	}
	if _, taken := c.channels[rtpCh]; taken {
		return fmt.Errorf("rtsp: SETUP %s: camera gave channel %d twice", t.Control, rtpCh)
	}
	c.channels[rtpCh] = channel{track: t}
	c.channels[rtcpCh] = channel{track: t, rtcp: true}
	id, params, _ := strings.Cut(resp.Header.Get("Session"), ";")
	if id = strings.TrimSpace(id); id == "" {
		return fmt.Errorf("rtsp: SETUP %s: answer has no Session", t.Control)
	}
	c.session = id
	for p := range strings.SplitSeq(params, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "timeout") {
			if s, err := strconv.Atoi(v); err == nil && s > 0 && s <= 3600 {
				c.sessionTimeout = time.Duration(s) * time.Second
			}
		}
	}
	return nil
}

// parseInterleaved reads the channels of a Transport answer (RFC 2326 §12.39).
func parseInterleaved(transport string) (rtpCh, rtcpCh byte, err error) {
	if !strings.Contains(strings.ToUpper(transport), "RTP/AVP/TCP") {
		return 0, 0, fmt.Errorf("camera answered transport %q, not RTP over the RTSP connection", truncate(transport))
	}
	for p := range strings.SplitSeq(transport, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(k, "interleaved") {
			continue
		}
		a, b, pair := strings.Cut(v, "-")
		x, err1 := strconv.ParseUint(a, 10, 8)
		y := x + 1
		var err2 error
		if pair {
			y, err2 = strconv.ParseUint(b, 10, 8)
		}
		if err1 != nil || err2 != nil || x == y {
			return 0, 0, fmt.Errorf("bad interleaved channels %q", truncate(v))
		}
		return byte(x), byte(y), nil
	}
	return 0, 0, fmt.Errorf("transport %q names no interleaved channels", truncate(transport))
}

// Play starts the media of the tracks set up.
func (c *Conn) Play() error {
	if len(c.channels) == 0 {
		return errors.New("rtsp: PLAY before any SETUP")
	}
	if _, err := c.do("PLAY", c.desc.Control, Header{"Range": {"npt=0.000-"}}); err != nil {
		return err
	}
	c.lastKeepAlive = time.Now()
	return nil
}

// ReadPacket returns the next RTP or RTCP packet of a track set up, sending a
// keep-alive when half the session timeout has passed since the last. It fails when
// the camera sends nothing for MediaTimeout, closes the connection, or sends what is
// neither RTSP nor an interleaved frame. The packet is valid until the next call.
func (c *Conn) ReadPacket() (Packet, error) {
	for {
		if time.Since(c.lastKeepAlive) >= c.sessionTimeout/2 {
			if err := c.sendKeepAlive(); err != nil {
				return Packet{}, err
			}
		}
		c.setReadDeadline(time.Now().Add(c.cfg.MediaTimeout))
		ch, frame, resp, err := c.readMessage()
		if err != nil {
			return Packet{}, c.readError(err)
		}
		if resp != nil {
			if err := c.checkKeepAliveAnswer(resp); err != nil {
				return Packet{}, err
			}
			continue
		}
		target, ok := c.channels[ch]
		if !ok {
			// A channel not set up: RFC 2326 §10.12 lets the client drop it.
			if err := c.skipUnusable(); err != nil {
				return Packet{}, err
			}
			continue
		}
		if target.rtcp {
			c.unusable = 0
			return Packet{Track: target.track, RTCP: frame}, nil
		}
		p := &rtp.Packet{}
		if err := p.Unmarshal(frame); err != nil {
			if err := c.skipUnusable(); err != nil { // not RTP: no use to anyone
				return Packet{}, err
			}
			continue
		}
		c.unusable = 0
		return Packet{Track: target.track, RTP: p}, nil
	}
}

// maxUnusable bounds the frames in a row that ReadPacket drops (channels not set up,
// payloads that are not RTP) before it gives up on the camera: without it, a camera
// sending only such frames would keep ReadPacket from ever returning.
const maxUnusable = 1000

func (c *Conn) skipUnusable() error {
	c.unusable++
	if c.unusable > maxUnusable {
		return fmt.Errorf("rtsp: %s: camera sent %d interleaved frames in a row that are not RTP or RTCP of a track set up", c.url, maxUnusable)
	}
	return nil
}

func (c *Conn) readError(err error) error {
	var ne net.Error
	switch {
	case c.isInterrupted():
		return fmt.Errorf("rtsp: %s: interrupted: %w", c.url, context.Canceled)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("rtsp: %s: camera sent nothing for %s", c.url, c.cfg.MediaTimeout)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("rtsp: %s: camera closed the connection", c.url)
	}
	return fmt.Errorf("rtsp: %s: %w", c.url, err)
}

func (c *Conn) sendKeepAlive() error {
	c.lastKeepAlive = time.Now()
	cseq, err := c.write(c.keepAlive, c.url, nil)
	c.keepAliveCSeq = cseq
	return err
}

// checkKeepAliveAnswer looks at a response that arrived among the media: an answer
// to a keep-alive. A camera without GET_PARAMETER gets OPTIONS from then on; a camera
// that forgot the session ends it.
func (c *Conn) checkKeepAliveAnswer(resp *Response) error {
	if resp.Header.Get("CSeq") != strconv.Itoa(c.keepAliveCSeq) {
		return nil
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case (resp.StatusCode == 405 || resp.StatusCode == 501 || resp.StatusCode == 551) && c.keepAlive == "GET_PARAMETER":
		c.keepAlive = "OPTIONS"
		return c.sendKeepAlive()
	case resp.StatusCode == 401 && c.cred != nil:
		ch, err := pickChallenge(resp.Header.Values("WWW-Authenticate"))
		if err != nil {
			return fmt.Errorf("rtsp: keep-alive: %w", err)
		}
		c.cred.challenge, c.cred.nc = ch, 0 // a new nonce: answer it on the next request
		return c.sendKeepAlive()
	}
	return &StatusError{Method: c.keepAlive, URL: c.url, StatusCode: resp.StatusCode, Reason: resp.Reason}
}

// WriteRTCP sends an RTCP compound packet (a receiver report, a PLI) to the camera
// on track t's RTCP channel.
func (c *Conn) WriteRTCP(t *Track, pkt []byte) error {
	if len(pkt) > 0xffff {
		return fmt.Errorf("rtsp: RTCP packet of %d bytes does not fit an interleaved frame", len(pkt))
	}
	for ch, target := range c.channels {
		if target.track == t && target.rtcp {
			frame := append([]byte{'$', ch, byte(len(pkt) >> 8), byte(len(pkt))}, pkt...)
			return c.writeBytes(frame)
		}
	}
	return errors.New("rtsp: RTCP for a track not set up")
}

// Close ends the session with TEARDOWN (waiting briefly for the answer) when one was
// set up, and closes the connection.
func (c *Conn) Close() error {
	c.stopWatch()
	c.mu.Lock()
	c.interrupted = false
	c.mu.Unlock()
	if c.session != "" {
		c.cfg.ResponseTimeout = min(c.cfg.ResponseTimeout, time.Second)
		_, _ = c.do("TEARDOWN", c.desc.Control, nil) // the camera forgets the session on close anyway
		c.session = ""
	}
	return c.conn.Close()
}

func (c *Conn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.interrupted = true
	_ = c.conn.SetDeadline(time.Unix(1, 0))
}

func (c *Conn) isInterrupted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.interrupted
}

func (c *Conn) setReadDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.interrupted {
		_ = c.conn.SetReadDeadline(t)
	}
}
