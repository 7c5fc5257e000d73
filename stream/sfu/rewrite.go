package sfu

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// viewerTrack is one of the box's tracks as one viewer receives it. It rewrites
// sequence numbers and timestamps so that the viewer sees one continuous stream:
// from a random start, across the keyframe burst it joined with, and across the box
// re-publishing (a new source with its own numbering).
type viewerTrack struct {
	viewer    *viewer
	kind      webrtc.RTPCodecType
	codec     webrtc.RTPCodecParameters
	track     *webrtc.TrackLocalStaticRTP
	sender    *webrtc.RTPSender
	clockRate uint32

	mu      sync.Mutex
	state   trackState
	src     *source     // the source attached to
	att     *attachment // nil until the first packet fixes the offsets
	sentAny bool
	lastSeq uint16 // newest sequence number sent
	lastTS  uint32 // its timestamp
	lastAt  time.Time

	nacksServed, nacksMissed atomic.Uint64
}

type trackState int

const (
	idle    trackState = iota // not attached to a source
	waiting                   // attached, waiting for a keyframe
	forwarding
)

// attachment maps one source's numbering onto the viewer's. It never changes once
// made, so a retransmission can use it without holding the track's lock.
type attachment struct {
	src       *source
	seqOffset uint16            // viewer seq = source seq + seqOffset
	tsOffset  uint32            // viewer ts = source ts + tsOffset …
	squeezed  map[uint32]uint32 // … except for the burst's earlier pictures
	firstSeq  uint16            // the first viewer seq of this attachment
	prelude   *rtp.Packet       // SPS/PPS sent first, at firstSeq, if the keyframe lacked them
}

func (a *attachment) rewrite(p *rtp.Packet) *rtp.Packet {
	out := &rtp.Packet{Header: p.Header, Payload: p.Payload}
	out.SequenceNumber = p.SequenceNumber + a.seqOffset
	if ts, ok := a.squeezed[p.Timestamp]; ok {
		out.Timestamp = ts
	} else {
		out.Timestamp = p.Timestamp + a.tsOffset
	}
	return out
}

// wait attaches to s until a keyframe arrives. Called with s.mu held.
func (vt *viewerTrack) wait(s *source) {
	vt.mu.Lock()
	vt.state, vt.src, vt.att = waiting, s, nil
	vt.mu.Unlock()
}

func (vt *viewerTrack) waitingForKeyframe() bool {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	return vt.state == waiting
}

// start begins forwarding from s. For video, burst holds the packets since the last
// keyframe: they are sent at once, their pictures' timestamps squeezed together just
// before the live picture, so the decoder shows the current picture at once instead
// of replaying seconds of GOP in real time; params, if any, are SPS and PPS to send
// first. For audio, burst is nil and the offsets are fixed by the first packet.
// Called with s.mu held.
func (vt *viewerTrack) start(s *source, burst []*rtp.Packet, params [][]byte) {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	vt.state, vt.src = forwarding, s
	if len(burst) == 0 {
		vt.att = nil // fixed by the next packet in forward
		return
	}
	seq, ts := vt.nextNumbers(time.Now())
	var frames []uint32
	seen := map[uint32]bool{}
	for _, p := range burst {
		if !seen[p.Timestamp] {
			seen[p.Timestamp] = true
			frames = append(frames, p.Timestamp)
		}
	}
	n := uint32(len(frames))
	att := &attachment{src: s, firstSeq: seq, squeezed: make(map[uint32]uint32, n)}
	att.tsOffset = ts + n - 1 - frames[n-1]
	for i, f := range frames[:n-1] {
		att.squeezed[f] = ts + uint32(i)
	}
	if params != nil {
		att.prelude = &rtp.Packet{Header: rtp.Header{
			Version: 2, PayloadType: burst[0].PayloadType, SSRC: burst[0].SSRC, SequenceNumber: seq, Timestamp: ts,
		}, Payload: stapA(params...)}
		seq++
	}
	att.seqOffset = seq - burst[0].SequenceNumber
	vt.att = att
	if att.prelude != nil {
		vt.send(att.prelude, true)
	}
	for _, p := range burst {
		vt.send(att.rewrite(p), true)
	}
}

// nextNumbers picks the first sequence number and timestamp of a new attachment:
// random for a new viewer, continuing the last ones after a switch of source, with
// the timestamp advanced by the time that passed.
func (vt *viewerTrack) nextNumbers(now time.Time) (uint16, uint32) {
	if !vt.sentAny {
		var b [6]byte
		_, _ = rand.Read(b[:])
		return binary.BigEndian.Uint16(b[:2]), binary.BigEndian.Uint32(b[2:])
	}
	elapsed := uint32(now.Sub(vt.lastAt).Seconds() * float64(vt.clockRate))
	return vt.lastSeq + 1, vt.lastTS + max(elapsed, 1)
}

// forward sends one live packet of the source. Called with the source's lock held.
func (vt *viewerTrack) forward(p *rtp.Packet) {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	if vt.state != forwarding {
		return
	}
	if vt.att == nil {
		seq, ts := vt.nextNumbers(time.Now())
		vt.att = &attachment{src: vt.src, seqOffset: seq - p.SequenceNumber, tsOffset: ts - p.Timestamp, firstSeq: seq}
	}
	vt.send(vt.att.rewrite(p), false)
}

// send queues a rewritten packet, live or as part of a keyframe burst, and
// remembers the newest numbers. Called with vt.mu held.
func (vt *viewerTrack) send(out *rtp.Packet, burst bool) {
	if !vt.sentAny || seqNewer(out.SequenceNumber, vt.lastSeq) {
		vt.lastSeq, vt.lastTS, vt.lastAt, vt.sentAny = out.SequenceNumber, out.Timestamp, time.Now(), true
	}
	if burst {
		vt.viewer.addBurst(queued{vt: vt, p: out})
		return
	}
	vt.viewer.enqueue(queued{vt: vt, p: out})
}

// detach leaves the current source, keeping the numbering for the next one.
func (vt *viewerTrack) detach() {
	vt.mu.Lock()
	vt.state, vt.src, vt.att = idle, nil, nil
	vt.mu.Unlock()
}

// retransmit answers a viewer's NACK from the source's packet cache. Sequence
// numbers from before the current attachment, or never sent, are ignored.
func (vt *viewerTrack) retransmit(seqs []uint16) {
	vt.mu.Lock()
	att, last := vt.att, vt.lastSeq
	vt.mu.Unlock()
	if att == nil || att.src == nil {
		return
	}
	for _, seq := range seqs {
		if seqNewer(att.firstSeq, seq) || seqNewer(seq, last) {
			continue
		}
		if att.prelude != nil && seq == att.firstSeq {
			vt.viewer.enqueue(queued{vt: vt, p: att.prelude})
			vt.nacksServed.Add(1)
			continue
		}
		p := att.src.lookup(seq - att.seqOffset)
		if p == nil {
			vt.nacksMissed.Add(1)
			continue
		}
		vt.viewer.enqueue(queued{vt: vt, p: att.rewrite(p)})
		vt.nacksServed.Add(1)
	}
}

// currentSource is the source the track is attached to, if any.
func (vt *viewerTrack) currentSource() *source {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	return vt.src
}
