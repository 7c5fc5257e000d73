package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// source is one media track of a box's publication as the hub receives it: it caches
// the recent packets, knows where the last keyframe started, and hands every packet
// to the viewers' tracks attached to it.
type source struct {
	kind      webrtc.RTPCodecType
	codec     webrtc.RTPCodecParameters
	h264      bool
	ssrc      atomic.Uint32 // the box's SSRC, known once the first packet arrived
	keyframes func()        // asks the box for a keyframe, rate-limited by the feed

	mu      sync.Mutex
	cache   *packetCache
	started bool
	highest uint16 // newest sequence number received
	// The access unit being received (video): its timestamp, first packet, and
	// whether it carried SPS and PPS.
	au au
	// The last keyframe's access unit, from which a joining decoder can start.
	key      au
	haveKey  bool
	sps, pps []byte // the last parameter sets seen, for keyframes sent without them
	sinks    map[*viewerTrack]struct{}

	packets, bytes, lost, late atomic.Uint64
	rate                       rateMeter
}

// maxCountedGap is the largest jump in sequence numbers counted as lost packets.
const maxCountedGap = 3000

// au is where an access unit (a picture) starts in the packet stream.
type au struct {
	ts       uint32
	start    uint16
	valid    bool
	sps, pps bool
}

// audioCache bounds an audio track's cache: audio has no keyframes to start from,
// and 512 packets is ten seconds of retransmission at 20 ms a packet.
const audioCache = 512

func newSource(kind webrtc.RTPCodecType, codec webrtc.RTPCodecParameters, cacheSize int, keyframes func()) *source {
	if kind == webrtc.RTPCodecTypeAudio {
		cacheSize = min(cacheSize, audioCache)
	}
	return &source{
		kind: kind, codec: codec, h264: isH264(codec.MimeType), keyframes: keyframes,
		cache: newPacketCache(cacheSize), sinks: map[*viewerTrack]struct{}{},
	}
}

// push takes one packet from the box: caches it, notes keyframes, and forwards it to
// every attached viewer track. Header extensions are dropped: their IDs were
// negotiated with the box, not with the viewers.
func (s *source) push(in *rtp.Packet, now time.Time) {
	p := &rtp.Packet{Header: in.Header, Payload: in.Payload}
	if cap(in.Payload) > 2*len(in.Payload) {
		// pion reads every packet into an MTU-sized buffer: a cached 100-byte audio
		// packet would keep 1.5 kB alive.
		p.Payload = append([]byte(nil), in.Payload...)
	}
	p.Extension, p.Extensions, p.ExtensionProfile = false, nil, 0
	p.Header.PaddingSize = in.Header.PaddingSize
	s.ssrc.Store(p.SSRC)
	s.packets.Add(1)
	s.bytes.Add(uint64(len(p.Payload)))
	s.rate.add(now, p.MarshalSize())

	s.mu.Lock()
	defer s.mu.Unlock()
	newer := true
	switch {
	case !s.started:
		s.started, s.highest = true, p.SequenceNumber
	case seqNewer(p.SequenceNumber, s.highest):
		// A jump of thousands is the box restarting its numbering, not loss.
		if gap := p.SequenceNumber - s.highest; gap > 1 && gap < maxCountedGap {
			s.lost.Add(uint64(gap - 1))
		}
		s.highest = p.SequenceNumber
	case p.SequenceNumber == s.highest || s.cache.get(p.SequenceNumber) != nil:
		return // a duplicate: viewers already have it
	default:
		newer = false
		s.late.Add(1) // a retransmission or a reordered packet filling a gap
	}
	s.cache.put(p)
	// Live viewers first: a viewer that a keyframe in this very packet starts gets
	// it in its first burst, not twice.
	for vt := range s.sinks {
		vt.forward(p)
	}
	if s.h264 && len(p.Payload) > 0 {
		s.noteVideo(p, newer)
	}
}

// noteVideo tracks access units and keyframes, and starts the viewers that were
// waiting for a keyframe.
func (s *source) noteVideo(p *rtp.Packet, newer bool) {
	switch {
	case !s.au.valid || (newer && p.Timestamp != s.au.ts):
		s.au = au{ts: p.Timestamp, start: p.SequenceNumber, valid: true}
	case p.Timestamp == s.au.ts && seqNewer(s.au.start, p.SequenceNumber):
		s.au.start = p.SequenceNumber // its first packet came late
	case p.Timestamp != s.au.ts:
		return // a late packet of an older picture
	}
	h := parseH264Payload(p.Payload)
	if h.sps != nil {
		s.sps, s.au.sps = append([]byte(nil), h.sps...), true
	}
	if h.pps != nil {
		s.pps, s.au.pps = append([]byte(nil), h.pps...), true
	}
	if !h.idr {
		return
	}
	fresh := !s.haveKey || s.key.ts != s.au.ts
	s.key, s.haveKey = s.au, true
	if !fresh {
		return
	}
	for vt := range s.sinks {
		if vt.waitingForKeyframe() {
			vt.start(s, s.burst(), s.parameterSets())
		}
	}
}

// attach starts forwarding to vt. A video viewer starts with the packets since the
// last keyframe when the cache still holds them all; otherwise it waits for the next
// one, which is asked of the box.
func (s *source) attach(vt *viewerTrack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sinks[vt] = struct{}{}
	if !s.h264 {
		vt.start(s, nil, nil)
		return
	}
	if burst := s.burst(); burst != nil {
		vt.start(s, burst, s.parameterSets())
		return
	}
	vt.wait(s)
	go s.keyframes()
}

// detach stops forwarding to vt.
func (s *source) detach(vt *viewerTrack) {
	s.mu.Lock()
	delete(s.sinks, vt)
	s.mu.Unlock()
}

// burst returns the cached packets from the last keyframe to the newest, in order, or
// nil when there is no keyframe or the cache no longer holds its first packet.
func (s *source) burst() []*rtp.Packet {
	if !s.haveKey || s.cache.get(s.key.start) == nil {
		return nil
	}
	span := int(s.highest-s.key.start) + 1
	if span > s.cache.len() {
		return nil
	}
	out := make([]*rtp.Packet, 0, span)
	for i := 0; i < span; i++ {
		if p := s.cache.get(s.key.start + uint16(i)); p != nil {
			out = append(out, p)
		}
	}
	return out
}

// parameterSets returns the SPS and PPS to send before a keyframe that did not carry
// them itself, or nil when it did (or none were ever seen).
func (s *source) parameterSets() [][]byte {
	if (s.key.sps && s.key.pps) || s.sps == nil || s.pps == nil {
		return nil
	}
	return [][]byte{s.sps, s.pps}
}

// lookup returns the cached packet with sequence number seq, for a retransmission.
func (s *source) lookup(seq uint16) *rtp.Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache.get(seq)
}

// rateMeter measures a bitrate over whole seconds without a timer.
type rateMeter struct {
	mu          sync.Mutex
	windowStart time.Time
	windowBytes int
	lastBPS     float64
}

func (m *rateMeter) add(now time.Time, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(now)
	m.windowBytes += n
}

// roll closes the current window when a second has passed.
func (m *rateMeter) roll(now time.Time) {
	if m.windowStart.IsZero() {
		m.windowStart = now
		return
	}
	if el := now.Sub(m.windowStart); el >= time.Second {
		if el >= 2*time.Second {
			m.lastBPS = 0 // silence in between
		} else {
			m.lastBPS = float64(m.windowBytes*8) / el.Seconds()
		}
		m.windowStart, m.windowBytes = now, 0
	}
}

// bitsPerSecond is the rate over the last whole second.
func (m *rateMeter) bitsPerSecond(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(now)
	return m.lastBPS
}
