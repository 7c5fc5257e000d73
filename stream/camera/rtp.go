package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pion/rtp"
)

// RTPSource receives raw RTP/H.264 on a UDP port (rtp://0.0.0.0:5004), as
// `ffmpeg -c copy -f rtp` or an encoder's unicast "RTP push" sends it. It takes any
// dynamic payload type (96–127) and the first sender's SSRC; the SPS and PPS come in
// band, or from the sender's SDP (SetParameterSets).
type RTPSource struct {
	addr    string
	timeout time.Duration
	status  *statusBox
	// bound receives the listening address once Run has bound the port, for
	// callers that asked for port 0.
	bound    chan string
	sps, pps []byte // from the sender's SDP, if given
}

// NewRTPSource returns a source that listens on addr (host:port) when Run is called.
// It fails when nothing arrives for timeout (default 10 s).
func NewRTPSource(addr string, timeout time.Duration) *RTPSource {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &RTPSource{addr: addr, timeout: timeout, status: newStatusBox("rtp://" + addr), bound: make(chan string, 1)}
}

// Status reports what arrives and what of it cannot be forwarded.
func (s *RTPSource) Status() Status { return s.status.get() }

// SetParameterSets gives the SPS and PPS of the sender's SDP, for senders that do not
// send them in band. Call it before Run.
func (s *RTPSource) SetParameterSets(sps, pps []byte) {
	s.sps, s.pps = bytes.Clone(sps), bytes.Clone(pps)
}

// Bound returns the address Run listens on, once it does.
func (s *RTPSource) Bound() <-chan string { return s.bound }

// switchSilence is how long the SSRC the source follows must be silent before it
// follows another sender (a restarted ffmpeg picks a new SSRC).
const switchSilence = time.Second

// maxUDPPayload is the largest UDP datagram; a larger read is impossible, so this
// bounds what one sender can make the source hold.
const maxUDPPayload = 65535

// Run listens and emits frames until ctx ends (nil) or nothing arrives for the
// timeout.
func (s *RTPSource) Run(ctx context.Context, emit func(Frame)) error {
	pc, err := net.ListenPacket("udp", s.addr)
	if err != nil {
		return fmt.Errorf("camera: listen for RTP on %s: %w", s.addr, err)
	}
	defer pc.Close()
	select {
	case s.bound <- pc.LocalAddr().String():
	default:
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	err = s.receive(ctx, pc, emit)
	if ctx.Err() != nil {
		err = nil
	}
	s.status.update(func(st *Status) {
		st.Connected = false
		if err != nil {
			st.LastError = err.Error()
		}
	})
	return err
}

func (s *RTPSource) receive(ctx context.Context, pc net.PacketConn, emit func(Frame)) error {
	buf := make([]byte, maxUDPPayload)
	v := newRTPVideo(s.status, s.sps, s.pps)
	var sniff hevcSniffer
	var ssrc uint32
	var following bool
	var lastFromSSRC time.Time
	lastUsable := time.Now()
	for {
		if time.Since(lastUsable) > s.timeout {
			// Datagrams keep coming, but none is H.264 RTP of the sender followed.
			return fmt.Errorf("camera: nothing usable on %s for %s: no RTP with a dynamic payload type (96-127)", pc.LocalAddr(), s.timeout)
		}
		if ctx.Err() == nil {
			_ = pc.SetReadDeadline(time.Now().Add(s.timeout))
		}
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				return fmt.Errorf("camera: no RTP on %s for %s", pc.LocalAddr(), s.timeout)
			}
			return fmt.Errorf("camera: RTP on %s: %w", pc.LocalAddr(), err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil || p.PayloadType < 96 || p.PayloadType > 127 {
			continue // not RTP, or RTCP (payload types 72–76 in this field), or a static type
		}
		now := time.Now()
		if following && p.SSRC != ssrc && now.Sub(lastFromSSRC) < switchSilence {
			continue // a second sender while the first still sends: keep the first
		}
		if !following || p.SSRC != ssrc {
			ssrc, following = p.SSRC, true
			v = newRTPVideo(s.status, s.sps, s.pps) // a new sender: new sequence and clock
		}
		lastFromSSRC, lastUsable = now, now
		v.push(&p, emit)
		if sniff.note(p.Payload) && v.depack.Stats().Keyframes == 0 {
			s.status.update(func(st *Status) { st.noteCodec("H265") })
		}
	}
}

// hevcSniffer tells an H.265 stream (RFC 7798) sent where H.264 is expected: raw RTP
// comes without an SDP to name its codec, and the H.264 depacketizer would only wait
// for an IDR picture that never comes, leaving the viewers a black screen.
type hevcSniffer struct {
	packets, hevcLike int
	decided           bool
}

// hevcSniffPackets is how many packets the sniffer looks at before it decides.
const hevcSniffPackets = 100

// note looks at one payload and returns true once, when the stream looks like H.265:
// nine in ten payloads start with an H.265 NAL unit header of layer 0 and temporal id
// 1 (the second byte 0x01), which an H.264 payload's second byte seldom is.
func (h *hevcSniffer) note(payload []byte) bool {
	if h.decided || len(payload) < 2 {
		return false
	}
	h.packets++
	if payload[0]&0x81 == 0 && payload[0]>>1 <= 49 && payload[1] == 0x01 {
		h.hevcLike++
	}
	if h.packets < hevcSniffPackets {
		return false
	}
	h.decided = true
	return h.hevcLike*10 >= h.packets*9
}
