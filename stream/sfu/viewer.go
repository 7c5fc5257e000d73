package sfu

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// ControlLabel is the data channel on which a viewer talks to the crew; its
// messages go to Config.OnViewerControl, never straight to the box.
const ControlLabel = "control"

// viewer is one WHEP session: one browser watching one box. Its packets wait in a
// bounded queue drained by its own writer, so a viewer that does not keep up loses
// its own packets and slows nobody.
type viewer struct {
	id, device, who, remote string
	joined                  time.Time
	feed                    *feed
	pc                      *webrtc.PeerConnection
	tracks                  []*viewerTrack
	ice                     iceResource
	queue                   chan queued   // live packets, bounded
	burstReady              chan struct{} // signals a keyframe burst in burst
	done                    chan struct{}
	attached                atomic.Bool
	ended                   atomic.Bool

	burstMu sync.Mutex
	burst   []queued // packets since the last keyframe, sent before the live ones

	mu       sync.Mutex
	channels map[string]*webrtc.DataChannel
	mic      *webrtc.TrackRemote // the viewer's microphone, if its offer sends audio

	packetsOut, bytesOut, dropped, dataDropped atomic.Uint64
	rate                                       rateMeter
}

// queued is a packet waiting for the viewer's writer.
type queued struct {
	vt *viewerTrack
	p  *rtp.Packet
	at time.Time // when it was queued, for the forwarding delay
}

// negotiateViewer answers a viewer's offer with one track for each of the box's
// tracks that the offer has a receiving section for.
func (s *SFU) negotiateViewer(ctx context.Context, api *webrtc.API, v *viewer, pub *publication, offer []byte) error {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("new peer connection: %w", err)
	}
	v.pc = pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf("the offer is not a usable SDP offer: %v", err)}
	}
	// The codecs of the first section of each kind the viewer receives on: a section
	// it only sends on (a push-to-talk microphone, perhaps in another codec than the
	// box's audio) is not where the box's track goes.
	offered := map[webrtc.RTPCodecType][]webrtc.RTPCodecParameters{}
	for _, t := range pc.GetTransceivers() {
		d := t.Direction()
		if _, seen := offered[t.Kind()]; seen || d != webrtc.RTPTransceiverDirectionSendonly && d != webrtc.RTPTransceiverDirectionSendrecv {
			continue
		}
		if r := t.Receiver(); r != nil {
			offered[t.Kind()] = r.GetParameters().Codecs
		}
	}
	for kind, src := range pub.sources {
		codecs, ok := offered[kind]
		if !ok {
			continue // the viewer does not want this kind (e.g. video only)
		}
		if !slices.ContainsFunc(codecs, func(c webrtc.RTPCodecParameters) bool { return sameFormat(c, src.codec) }) {
			return &httpError{code: http.StatusNotAcceptable, msg: fmt.Sprintf(
				"the viewer cannot receive the box's %s format %s %s", kind, src.codec.MimeType, src.codec.SDPFmtpLine)}
		}
		track, err := webrtc.NewTrackLocalStaticRTP(src.codec.RTPCodecCapability, kind.String(), "lifeline-"+v.device)
		if err != nil {
			return fmt.Errorf("new %s track: %w", kind, err)
		}
		sender, err := pc.AddTrack(track)
		if err != nil {
			return fmt.Errorf("add %s track: %w", kind, err)
		}
		vt := &viewerTrack{viewer: v, kind: kind, codec: src.codec, track: track, sender: sender, clockRate: src.codec.ClockRate}
		v.tracks = append(v.tracks, vt)
	}
	if err := answer(ctx, pc); err != nil {
		return &httpError{code: http.StatusBadRequest, msg: err.Error()}
	}
	return nil
}

// startViewer wires a negotiated viewer: its writer, its RTCP, its data channels,
// and its attachment to the box's tracks once its transport is up.
func (s *SFU) startViewer(v *viewer) {
	go v.write()
	for _, vt := range v.tracks {
		go s.readViewerRTCP(v, vt)
	}
	v.pc.OnDataChannel(func(dc *webrtc.DataChannel) { s.viewerChannel(v, dc) })
	v.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() != webrtc.RTPCodecTypeAudio {
			return
		}
		v.mu.Lock()
		v.mic = tr
		v.mu.Unlock()
		s.readMicrophone(v, tr)
	})
	v.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			if v.attached.Swap(true) {
				return // back after an ICE restart: still attached
			}
			if err := v.feed.attachViewer(v); err != nil {
				s.endViewer(v, err.Error())
			}
		case webrtc.PeerConnectionStateFailed:
			s.endViewer(v, "viewer connection failed")
		case webrtc.PeerConnectionStateClosed:
			s.endViewer(v, "viewer connection closed")
		}
	})
}

// write sends the viewer's packets until the viewer ends: a keyframe burst first,
// paced to BurstRate so that seconds of GOP do not overflow the viewer's network
// path or socket buffer and turn into a storm of NACKs, then the live queue.
func (v *viewer) write() {
	pace := pacer{rate: v.feed.sfu.cfg.BurstRate}
	for {
		if burst := v.takeBurst(); burst != nil {
			for _, q := range burst {
				if !pace.wait(q.p.MarshalSize(), v.done) {
					return
				}
				v.send(q)
			}
			continue
		}
		select {
		case <-v.done:
			return
		case <-v.burstReady:
		case q := <-v.queue:
			v.send(q)
			v.feed.sfu.metrics.forwardDelay.Observe(time.Since(q.at).Seconds())
		}
	}
}

// send writes one packet to the viewer's track.
func (v *viewer) send(q queued) {
	if err := q.vt.track.WriteRTP(q.p); err != nil {
		return
	}
	n := q.p.MarshalSize()
	v.packetsOut.Add(1)
	v.bytesOut.Add(uint64(n))
	v.rate.add(time.Now(), n)
	v.feed.sfu.metrics.bytesOut.Add(float64(n))
}

// addBurst hands the writer packets to send before any live packet queued after
// them. One burst fits the packet cache; only a viewer whose writer is stuck while
// the box re-publishes again and again could pile up more, and that is dropped.
func (v *viewer) addBurst(q queued) {
	v.burstMu.Lock()
	if len(v.burst) >= v.feed.sfu.cfg.PacketCache {
		v.burstMu.Unlock()
		v.dropped.Add(1)
		v.feed.sfu.metrics.dropped.WithLabelValues("rtp").Inc()
		return
	}
	v.burst = append(v.burst, q)
	v.burstMu.Unlock()
	select {
	case v.burstReady <- struct{}{}:
	default: // already signalled
	}
}

// takeBurst returns the waiting burst, if any, and empties it.
func (v *viewer) takeBurst() []queued {
	v.burstMu.Lock()
	defer v.burstMu.Unlock()
	b := v.burst
	v.burst = nil
	return b
}

// enqueue queues a packet for the viewer, or drops and counts it when the viewer's
// queue is full: the box's fan-out never waits for one viewer.
func (v *viewer) enqueue(q queued) {
	q.at = time.Now()
	select {
	case v.queue <- q:
	default:
		v.dropped.Add(1)
		v.feed.sfu.metrics.dropped.WithLabelValues("rtp").Inc()
	}
}

// readViewerRTCP answers the viewer's NACKs from the packet cache and forwards its
// picture loss reports to the box, rate-limited by the feed.
func (s *SFU) readViewerRTCP(v *viewer, vt *viewerTrack) {
	for {
		pkts, _, err := vt.sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				var seqs []uint16
				for _, pair := range p.Nacks {
					seqs = append(seqs, pair.PacketList()...)
				}
				before := vt.nacksServed.Load()
				vt.retransmit(seqs)
				served := vt.nacksServed.Load() - before
				s.nacksServed.Add(served)
				s.metrics.nacksServed.Add(float64(served))
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if vt.kind == webrtc.RTPCodecTypeVideo {
					v.feed.requestKeyframe()
				}
			}
		}
	}
}

// viewerChannel keeps a viewer's data channel by label, for the box's messages, and
// hands what the viewer sends on control to OnViewerControl.
func (s *SFU) viewerChannel(v *viewer, dc *webrtc.DataChannel) {
	label := dc.Label()
	v.mu.Lock()
	if len(v.channels) >= maxChannels || v.channels[label] != nil {
		v.mu.Unlock()
		dc.Close()
		return
	}
	v.channels[label] = dc
	v.mu.Unlock()
	if label != ControlLabel {
		return
	}
	dc.OnMessage(func(msg webrtc.DataChannelMessage) {
		if s.cfg.OnViewerControl != nil {
			s.cfg.OnViewerControl(ViewerInfo{Device: v.device, Session: v.id, Viewer: v.who, Remote: v.remote}, msg.Data)
		}
	})
}

// sendData relays one of the box's messages to the viewer's channel of the same
// label, if it opened one; when too much already waits on that channel the message
// is dropped and counted rather than buffered without bound.
func (v *viewer) sendData(label string, msg webrtc.DataChannelMessage) {
	v.mu.Lock()
	dc := v.channels[label]
	v.mu.Unlock()
	if dc == nil || dc.ReadyState() != webrtc.DataChannelStateOpen {
		return
	}
	if dc.BufferedAmount() > v.feed.sfu.cfg.ViewerDataBuffer {
		v.dataDropped.Add(1)
		v.feed.sfu.metrics.dropped.WithLabelValues("data").Inc()
		return
	}
	var err error
	if msg.IsString {
		err = dc.SendText(string(msg.Data))
	} else {
		err = dc.Send(msg.Data)
	}
	if err != nil {
		v.dataDropped.Add(1)
		v.feed.sfu.metrics.dropped.WithLabelValues("data").Inc()
	}
}

// pacer spaces packets so that they leave at no more than rate bits per second on
// average, sleeping only when the debt exceeds a couple of milliseconds (timers are
// not finer than that).
type pacer struct {
	rate float64
	next time.Time // when the next packet may leave
}

// wait blocks until a packet of n bytes may leave; it reports false when done
// closed first.
func (p *pacer) wait(n int, done <-chan struct{}) bool {
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(n*8) / p.rate * float64(time.Second)))
	d := p.next.Sub(now)
	if d < 2*time.Millisecond {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
