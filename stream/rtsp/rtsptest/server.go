// Package rtsptest is an RTSP/1.0 camera for tests: it answers OPTIONS, DESCRIBE
// (behind Basic or Digest authentication if asked), SETUP over interleaved TCP, PLAY,
// GET_PARAMETER and TEARDOWN, and plays given H.264 access units in a loop as RTP,
// packetised by pion. It can misbehave as cameras do: answer garbage, or stop in the
// middle of the stream.
package rtsptest

import (
	"bufio"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"lifeline/stream/rtsp"
)

// Fault is a way the camera misbehaves.
type Fault int

// Faults.
const (
	NoFault Fault = iota
	// GarbageAnswer answers the first request with 64 KiB of bytes that are no RTSP.
	GarbageAnswer
	// GarbageMidStream sends bytes that are neither RTSP nor an interleaved frame
	// after StopAfter packets.
	GarbageMidStream
	// StopMidStream stops sending after StopAfter packets and keeps the connection
	// open, as a camera that hangs does.
	StopMidStream
	// CloseMidStream closes the connection after StopAfter packets.
	CloseMidStream
	// WrongChannelMidStream sends its packets on channel 7, never set up, after
	// StopAfter packets.
	WrongChannelMidStream
)

// Config describes the camera.
type Config struct {
	// Username and Password, if set, are required with Auth's scheme.
	Username, Password string
	// Auth is "basic" or "digest" (the default when a Username is set).
	Auth string
	// AccessUnits are the pictures to play, in Annex B form, the first an IDR.
	AccessUnits [][]byte
	// SPS and PPS go into the SDP's sprop-parameter-sets when set.
	SPS, PPS []byte
	// FrameDuration paces the pictures; default 1/30 s.
	FrameDuration time.Duration
	// Codec is the rtpmap name of the video; default H264.
	Codec string
	// SessionTimeout is the timeout the Session header announces, in seconds;
	// default 60.
	SessionTimeout int
	// Audio adds a PCMU track that sends 20 ms of silence every 20 ms once set up.
	Audio bool
	// NoOptions answers OPTIONS with 501, as a few cameras do.
	NoOptions bool
	// UDPOnly refuses RTP over TCP with 461, as VLC's RTSP output does.
	UDPOnly bool
	// NoGetParameter answers GET_PARAMETER with 501, as some cameras do.
	NoGetParameter bool
	Fault          Fault
	StopAfter      int
}

// Server is a running test camera.
type Server struct {
	// URL is the stream's address, rtsp://127.0.0.1:PORT/stream, without credentials.
	URL string

	cfg   Config
	ln    net.Listener
	nonce string
	wg    sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]bool
	requests []string
	sent     int
	rtcp     [][]byte
	closed   bool
}

// NewServer starts a camera on a loopback port.
func NewServer(cfg Config) (*Server, error) {
	if cfg.FrameDuration <= 0 {
		cfg.FrameDuration = time.Second / 30
	}
	if cfg.Codec == "" {
		cfg.Codec = "H264"
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 60
	}
	if cfg.Username != "" && cfg.Auth == "" {
		cfg.Auth = "digest"
	}
	if len(cfg.AccessUnits) == 0 {
		return nil, errors.New("rtsptest: no access units to play")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "rtsp://" + ln.Addr().String() + "/stream", cfg: cfg, ln: ln, nonce: fmt.Sprintf("%x", time.Now().UnixNano()), conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Requests returns the methods received so far, in order, over all connections.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Sent returns how many RTP packets were sent, over all connections.
func (s *Server) Sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// RTCP returns the RTCP packets the client sent on its interleaved channels.
func (s *Server) RTCP() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.rtcp...)
}

// Close stops the camera and waits for its goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serve(c)
		}()
	}
}

// session is one client connection.
type session struct {
	s       *Server
	c       net.Conn
	br      *bufio.Reader
	wmu     sync.Mutex
	channel byte
	audio   bool
	playing chan struct{}
	done    chan struct{}
}

func (s *Server) serve(c net.Conn) {
	ss := &session{s: s, c: c, br: bufio.NewReader(c), playing: make(chan struct{}), done: make(chan struct{})}
	defer close(ss.done)
	for {
		method, uri, h, err := readRequest(ss.br, func(b []byte) {
			s.mu.Lock()
			s.rtcp = append(s.rtcp, b)
			s.mu.Unlock()
		})
		if err != nil {
			return
		}
		s.mu.Lock()
		s.requests = append(s.requests, method)
		s.mu.Unlock()
		if s.cfg.Fault == GarbageAnswer {
			junk := make([]byte, 64<<10)
			for i := range junk {
				junk[i] = byte('A' + i%26)
			}
			ss.write(junk)
			return
		}
		if !ss.handle(method, uri, h) {
			return
		}
	}
}

// readRequest reads a request line and its header (the tests' client sends no
// body), handing the interleaved frames before it (RTCP from the client) to rtcp.
func readRequest(br *bufio.Reader, rtcp func([]byte)) (method, uri string, h rtsp.Header, err error) {
	for {
		if first, err := br.Peek(1); err == nil && first[0] == '$' {
			var head [4]byte
			if _, err := io.ReadFull(br, head[:]); err != nil {
				return "", "", nil, err
			}
			frame := make([]byte, int(head[2])<<8|int(head[3]))
			if _, err := io.ReadFull(br, frame); err != nil {
				return "", "", nil, err
			}
			rtcp(frame)
			continue
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return "", "", nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		if line[0] == '$' {
			return "", "", nil, errors.New("rtsptest: interleaved frame where a request line belongs")
		}
		parts := strings.Fields(line)
		if len(parts) != 3 {
			return "", "", nil, fmt.Errorf("rtsptest: bad request line %q", line)
		}
		h = rtsp.Header{}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return "", "", nil, err
			}
			l = strings.TrimRight(l, "\r\n")
			if l == "" {
				return parts[0], parts[1], h, nil
			}
			k, v, _ := strings.Cut(l, ":")
			h.Add(k, strings.TrimSpace(v))
		}
	}
}

func (ss *session) write(b []byte) {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	_, _ = ss.c.Write(b)
}

func (ss *session) respond(h rtsp.Header, status string, extra []string, body string) {
	var b strings.Builder
	fmt.Fprintf(&b, "RTSP/1.0 %s\r\nCSeq: %s\r\n", status, h.Get("CSeq"))
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	ss.write([]byte(b.String()))
}

// handle answers one request; false ends the connection.
func (ss *session) handle(method, uri string, h rtsp.Header) bool {
	s := ss.s
	if method != "OPTIONS" && !s.authorized(method, uri, h) {
		ch := fmt.Sprintf(`WWW-Authenticate: Digest realm="lifeline-test", nonce="%s", qop="auth", algorithm=MD5`, s.nonce)
		if s.cfg.Auth == "basic" {
			ch = `WWW-Authenticate: Basic realm="lifeline-test"`
		}
		ss.respond(h, "401 Unauthorized", []string{ch}, "")
		return true
	}
	session := fmt.Sprintf("Session: 12345678;timeout=%d", s.cfg.SessionTimeout)
	switch method {
	case "OPTIONS":
		if s.cfg.NoOptions {
			ss.respond(h, "501 Not Implemented", nil, "")
			return true
		}
		public := "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"
		if s.cfg.NoGetParameter {
			public = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"
		}
		ss.respond(h, "200 OK", []string{"Public: " + public}, "")
	case "DESCRIBE":
		ss.respond(h, "200 OK", []string{"Content-Type: application/sdp", "Content-Base: " + s.URL + "/"}, s.sdp())
	case "SETUP":
		ss.setup(uri, h, session)
	case "PLAY":
		ss.respond(h, "200 OK", []string{session, "RTP-Info: url=" + s.URL + "/trackID=1;seq=1000;rtptime=0"}, "")
		select {
		case <-ss.playing:
		default:
			close(ss.playing)
			s.wg.Add(1)
			go ss.play()
			if ss.audio {
				s.wg.Add(1)
				go ss.playAudio()
			}
		}
	case "GET_PARAMETER":
		if s.cfg.NoGetParameter {
			ss.respond(h, "501 Not Implemented", nil, "")
		} else {
			ss.respond(h, "200 OK", []string{session}, "")
		}
	case "TEARDOWN":
		ss.respond(h, "200 OK", []string{session}, "")
		return false
	default:
		ss.respond(h, "501 Not Implemented", nil, "")
	}
	return true
}

// setup answers SETUP of the video (trackID=1) or, when there is audio, trackID=2,
// over TCP only.
func (ss *session) setup(uri string, h rtsp.Header, session string) {
	if ss.s.cfg.UDPOnly || !strings.Contains(h.Get("Transport"), "RTP/AVP/TCP") {
		ss.respond(h, "461 Unsupported Transport", nil, "")
		return
	}
	switch {
	case strings.HasSuffix(uri, "/stream/trackID=1"):
		ss.channel = 0
		ss.respond(h, "200 OK", []string{"Transport: RTP/AVP/TCP;unicast;interleaved=0-1", session}, "")
	case ss.s.cfg.Audio && strings.HasSuffix(uri, "/stream/trackID=2"):
		ss.audio = true
		ss.respond(h, "200 OK", []string{"Transport: RTP/AVP/TCP;unicast;interleaved=2-3", session}, "")
	default:
		ss.respond(h, "404 Not Found", nil, "")
	}
}

func (s *Server) sdp() string {
	audio := ""
	if s.cfg.Audio {
		audio = "m=audio 0 RTP/AVP 0\r\na=control:trackID=2\r\n"
	}
	fmtp := "packetization-mode=1"
	if s.cfg.SPS != nil && s.cfg.PPS != nil {
		fmtp += fmt.Sprintf(";profile-level-id=%x;sprop-parameter-sets=%s,%s", s.cfg.SPS[1:4],
			base64.StdEncoding.EncodeToString(s.cfg.SPS), base64.StdEncoding.EncodeToString(s.cfg.PPS))
	}
	return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Lifeline test camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 " + s.cfg.Codec + "/90000\r\na=fmtp:96 " + fmtp + "\r\na=control:trackID=1\r\n" + audio
}

// authorized checks the request's Authorization against the configured scheme, with
// its own Digest computation (RFC 2617 §3.2.2).
func (s *Server) authorized(method, uri string, h rtsp.Header) bool {
	if s.cfg.Username == "" {
		return true
	}
	a := h.Get("Authorization")
	if s.cfg.Auth == "basic" {
		return a == "Basic "+base64.StdEncoding.EncodeToString([]byte(s.cfg.Username+":"+s.cfg.Password))
	}
	c, err := rtsp.ParseChallenge(a)
	if err != nil || c.Scheme != "Digest" {
		return false
	}
	p := c.Params
	md5hex := func(s string) string { d := md5.Sum([]byte(s)); return hex.EncodeToString(d[:]) }
	ha1 := md5hex(s.cfg.Username + ":lifeline-test:" + s.cfg.Password)
	ha2 := md5hex(method + ":" + p["uri"])
	want := md5hex(ha1 + ":" + s.nonce + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
	return p["username"] == s.cfg.Username && p["nonce"] == s.nonce && p["uri"] == uri && p["qop"] == "auth" && p["response"] == want
}

// play sends the access units in a loop, paced by FrameDuration, until the
// connection ends or a fault stops it.
func (ss *session) play() {
	defer ss.s.wg.Done()
	cfg := ss.s.cfg
	payloader := &codecs.H264Payloader{}
	ticks := uint32(cfg.FrameDuration.Seconds() * 90000)
	seq := uint16(1000)
	next := time.Now()
	for i := 0; ; i++ {
		au := cfg.AccessUnits[i%len(cfg.AccessUnits)]
		payloads := payloader.Payload(1200, au)
		for j, pl := range payloads {
			if ss.fault(seq - 1000) {
				return
			}
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(i) * ticks,
				SSRC: 0x11223344, Marker: j == len(payloads)-1}, Payload: pl}
			b, _ := p.Marshal()
			frame := append([]byte{'$', ss.channel, byte(len(b) >> 8), byte(len(b))}, b...)
			ss.write(frame)
			seq++
			ss.s.mu.Lock()
			ss.s.sent++
			ss.s.mu.Unlock()
		}
		next = next.Add(cfg.FrameDuration)
		select {
		case <-ss.done:
			return
		case <-time.After(time.Until(next)):
		}
	}
}

// fault acts out the configured fault once sent packets reach StopAfter; true ends
// playing.
func (ss *session) fault(sent uint16) bool {
	cfg := ss.s.cfg
	if cfg.Fault < GarbageMidStream || int(sent) < cfg.StopAfter {
		return false
	}
	switch cfg.Fault {
	case GarbageMidStream:
		ss.write([]byte("\x17\x03\x03 this is not RTSP at all\r\n"))
	case CloseMidStream:
		ss.c.Close()
	case StopMidStream:
		<-ss.done
	case WrongChannelMidStream:
		ss.channel = 7
		return false
	}
	return true
}

// playAudio sends 20 ms PCMU packets of silence on channel 2 until the connection
// ends.
func (ss *session) playAudio() {
	defer ss.s.wg.Done()
	silence := make([]byte, 160)
	for i := range silence {
		silence[i] = 0xff // PCMU zero
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ss.done:
			return
		case <-t.C:
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 0x55667788}, Payload: silence}
		b, _ := p.Marshal()
		ss.write(append([]byte{'$', 2, byte(len(b) >> 8), byte(len(b))}, b...))
	}
}
