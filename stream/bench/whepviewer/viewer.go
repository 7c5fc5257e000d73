// Package whepviewer is a standard WHEP player on pion, for tests and the stream
// benchmark: it receives one box's video, audio and vitals from the hub and records
// when each arrived, without decoding. It can open its sockets in another network
// namespace (Config.Socket), which Chromium cannot.
package whepviewer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Config says where the viewer's sockets come from.
type Config struct {
	// Socket runs fn where the viewer's sockets must live (a network namespace); the
	// default runs it in place.
	Socket func(fn func() error) error
	// UDPAddr is the local address of the viewer's one media socket; default
	// "127.0.0.1:0".
	UDPAddr string
}

// Message is one vitals message as it arrived, with the fields the tests check.
type Message struct {
	At          time.Time       `json:"-"`
	Type        string          `json:"type"`
	Seq         uint64          `json:"seq"`
	MDC         string          `json:"mdc"`
	Gap         bool            `json:"gap"`
	BoxTime     time.Time       `json:"box_time"`
	MonitorTime time.Time       `json:"monitor_time"`
	Value       *float64        `json:"value"`
	Raw         json.RawMessage `json:"-"`
}

// Viewer is one WHEP session. Its methods are safe for concurrent use.
type Viewer struct {
	pc       *webrtc.PeerConnection
	udp      net.PacketConn
	client   *http.Client
	location string

	mu          sync.Mutex
	vitals      []Message
	waves       []Message
	keyframes   []time.Time // arrival of the first packet of each IDR access unit
	frames      []time.Time // arrival of the last packet (marker) of each access unit
	videoBytes  uint64
	videoPkts   uint64
	videoLost   uint64 // sequence numbers skipped (before NACK repair)
	lastSeq     uint16
	haveSeq     bool
	extSeq      uint64              // the highest sequence number, extended over wraps
	seen        map[uint64]struct{} // every extended sequence number received
	firstExt    uint64
	onVideoRTP  func(p *rtp.Packet, at time.Time)
	onMessage   func(label string, m Message)
	videoSource uint32
}

// Hooks are called from the viewer's goroutines as packets and messages arrive.
type Hooks struct {
	VideoRTP func(p *rtp.Packet, at time.Time)
	Message  func(label string, m Message)
}

// Watch posts a WHEP offer to url with bearer token (may be empty) and returns the
// viewer once the hub answered; media follows when ICE and DTLS complete.
func Watch(ctx context.Context, url, token string, cfg Config, hooks Hooks) (*Viewer, error) {
	if cfg.Socket == nil {
		cfg.Socket = func(fn func() error) error { return fn() }
	}
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = "127.0.0.1:0"
	}
	v := &Viewer{onVideoRTP: hooks.VideoRTP, onMessage: hooks.Message}
	if err := cfg.Socket(func() error {
		var err error
		v.udp, err = net.ListenPacket("udp4", cfg.UDPAddr)
		return err
	}); err != nil {
		return nil, fmt.Errorf("whepviewer: media socket: %w", err)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := cfg.Socket(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	v.client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DialContext: dial,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // a test peer of the hub's own certificate
	if err := v.connect(ctx, url, token); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

func (v *Viewer) connect(ctx context.Context, url, token string) error {
	api, err := newAPI(v.udp)
	if err != nil {
		return err
	}
	if v.pc, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return err
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := v.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return err
		}
	}
	zero := uint16(0)
	unordered := false
	for _, ch := range []struct {
		label string
		init  *webrtc.DataChannelInit
	}{{"vitals", nil}, {"vitals-wave", &webrtc.DataChannelInit{Ordered: &unordered, MaxRetransmits: &zero}}, {"control", nil}} {
		dc, err := v.pc.CreateDataChannel(ch.label, ch.init)
		if err != nil {
			return err
		}
		label := ch.label
		dc.OnMessage(func(msg webrtc.DataChannelMessage) { v.message(label, msg.Data) })
	}
	v.pc.OnTrack(v.track)
	offer, err := v.pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(v.pc)
	if err := v.pc.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(v.pc.LocalDescription().SDP))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return fmt.Errorf("whepviewer: POST %s: %w", url, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("whepviewer: POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	if loc, err := neturl.Parse(resp.Header.Get("Location")); err == nil && loc.String() != "" {
		v.location = req.URL.ResolveReference(loc).String()
	}
	return v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)})
}

// newAPI builds a full ICE agent on the one UDP socket, with NACK and RTCP reports.
func newAPI(udp net.PacketConn) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled // a closed session's socket errors are expected
	se.LoggerFactory = quiet
	se.SetICEUDPMux(webrtc.NewICEUDPMux(nil, udp))
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// track reads a remote track until it ends, recording video access units.
func (v *Viewer) track(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	go func() { // RTCP must be read for the interceptors to work
		buf := make([]byte, 1500)
		for {
			if _, _, err := recv.Read(buf); err != nil {
				return
			}
		}
	}()
	video := tr.Kind() == webrtc.RTPCodecTypeVideo
	if video {
		v.mu.Lock()
		v.videoSource = uint32(tr.SSRC())
		v.mu.Unlock()
		_ = v.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}})
	}
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if video {
			v.video(p, time.Now())
		}
	}
}

func (v *Viewer) video(p *rtp.Packet, at time.Time) {
	v.mu.Lock()
	v.videoPkts++
	v.videoBytes += uint64(len(p.Payload))
	if v.haveSeq {
		if d := p.SequenceNumber - v.lastSeq; d > 1 && d < 1<<15 {
			v.videoLost += uint64(d - 1)
		}
	}
	if !v.haveSeq {
		v.extSeq, v.firstExt = 1<<32+uint64(p.SequenceNumber), 1<<32+uint64(p.SequenceNumber)
		v.seen = map[uint64]struct{}{}
	}
	ext := uint64(int64(v.extSeq) + int64(int16(p.SequenceNumber-uint16(v.extSeq))))
	v.seen[ext] = struct{}{}
	if !v.haveSeq || int16(p.SequenceNumber-v.lastSeq) > 0 {
		v.lastSeq, v.haveSeq, v.extSeq = p.SequenceNumber, true, ext
	}
	if StartsIDR(p.Payload) {
		v.keyframes = append(v.keyframes, at)
	}
	if p.Marker {
		v.frames = append(v.frames, at)
	}
	hook := v.onVideoRTP
	v.mu.Unlock()
	if hook != nil {
		hook(p, at)
	}
}

// StartsIDR reports whether an H.264 RTP payload (RFC 6184) starts or carries an IDR
// slice or the SPS that precedes one.
func StartsIDR(payload []byte) bool {
	if len(payload) < 2 {
		return false
	}
	switch t := payload[0] & 0x1f; t {
	case 5, 7:
		return true
	case 24: // STAP-A: NAL units, each after a 16-bit size
		for b := payload[1:]; len(b) > 2; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b) < 2+n {
				return false
			}
			if nt := b[2] & 0x1f; nt == 5 || nt == 7 {
				return true
			}
			b = b[2+n:]
		}
	case 28: // FU-A: the start fragment names the type
		return payload[1]&0x80 != 0 && payload[1]&0x1f == 5
	}
	return false
}

func (v *Viewer) message(label string, data []byte) {
	m := Message{At: time.Now(), Raw: append(json.RawMessage(nil), data...)}
	if json.Unmarshal(data, &m) != nil {
		return
	}
	v.mu.Lock()
	if label == "vitals-wave" {
		v.waves = append(v.waves, m)
	} else if label == "vitals" {
		v.vitals = append(v.vitals, m)
	}
	hook := v.onMessage
	v.mu.Unlock()
	if hook != nil {
		hook(label, m)
	}
}

// Stats is what the viewer received so far.
type Stats struct {
	Vitals, Waves     []Message
	Keyframes, Frames []time.Time
	VideoPackets      uint64
	VideoBytes        uint64
	VideoSkipped      uint64 // sequence numbers never seen in order (loss before repair)
	// VideoExpected is the span of video sequence numbers from the first received to
	// the highest; VideoUnique how many of them arrived, retransmissions included.
	VideoExpected, VideoUnique uint64
	Connection                 string
}

// Stats returns copies of what arrived so far.
func (v *Viewer) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	var expected uint64
	if v.haveSeq {
		expected = v.extSeq - v.firstExt + 1
	}
	return Stats{
		VideoExpected: expected,
		Vitals:        append([]Message(nil), v.vitals...), Waves: append([]Message(nil), v.waves...),
		Keyframes: append([]time.Time(nil), v.keyframes...), Frames: append([]time.Time(nil), v.frames...),
		VideoPackets: v.videoPkts, VideoBytes: v.videoBytes, VideoSkipped: v.videoLost,
		VideoUnique: uint64(len(v.seen)),
		Connection:  v.pc.ConnectionState().String(),
	}
}

// Close ends the session: DELETE on the session resource, then the peer connection.
func (v *Viewer) Close() error {
	if v.location != "" && v.client != nil {
		if req, err := http.NewRequest(http.MethodDelete, v.location, nil); err == nil {
			if resp, err := v.client.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
	var err error
	if v.pc != nil {
		err = v.pc.Close()
	}
	if v.udp != nil {
		v.udp.Close()
	}
	return err
}

// MissingVideo counts the video sequence numbers from the first received up to all
// but the newest recent ones (which NACK may still repair) that never arrived, and how
// many sequence numbers that span holds.
func (v *Viewer) MissingVideo(recent uint64) (missing, span uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.haveSeq || v.extSeq < v.firstExt+recent {
		return 0, 0
	}
	for s := v.firstExt; s <= v.extSeq-recent; s++ {
		if _, ok := v.seen[s]; !ok {
			missing++
		}
	}
	return missing, v.extSeq - recent - v.firstExt + 1
}
