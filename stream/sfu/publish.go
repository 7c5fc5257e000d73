package sfu

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// maxChannels bounds the data channels one peer may open: Lifeline uses three.
const maxChannels = 16

// publication is one WHIP session: a box's peer connection, its tracks as sources,
// and its data channels.
type publication struct {
	id, device, remote string
	started            time.Time
	feed               *feed
	pc                 *webrtc.PeerConnection
	sources            map[webrtc.RTPCodecType]*source
	talkback           *talkback // nil when the box offered no audio to receive
	ice                iceResource

	mu       sync.Mutex
	channels map[string]*webrtc.DataChannel
	ended    atomic.Bool
}

// negotiatePublication answers a box's offer: it keeps, per media section, the one
// codec the hub prefers among those offered, so that the viewers' tracks can be set
// up before the first packet arrives. An audio section the box offers to receive
// becomes its talk-back channel.
func (s *SFU) negotiatePublication(ctx context.Context, api *webrtc.API, offer []byte) (*publication, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	pub := &publication{pc: pc, sources: map[webrtc.RTPCodecType]*source{}}
	fail := func(code int, format string, a ...any) (*publication, error) {
		pc.Close()
		return nil, &httpError{code: code, msg: fmt.Sprintf(format, a...)}
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return fail(http.StatusBadRequest, "the offer is not a usable SDP offer: %v", err)
	}
	for _, t := range pc.GetTransceivers() {
		kind := t.Kind()
		codec, ok := preferredCodec(t.Receiver().GetParameters().Codecs)
		if !ok {
			return fail(http.StatusNotAcceptable, "the offer's %s has no codec the hub forwards (H.264 packetization-mode 0 or 1, Opus, PCMU, PCMA)", kind)
		}
		if err := t.SetCodecPreferences([]webrtc.RTPCodecParameters{codec}); err != nil {
			return fail(http.StatusInternalServerError, "keep %s for %s: %v", codec.MimeType, kind, err)
		}
		if kind == webrtc.RTPCodecTypeAudio && t.Direction() == webrtc.RTPTransceiverDirectionSendonly && pub.talkback == nil {
			if pub.talkback, err = newTalkback(api, pc, t, codec); err != nil {
				return fail(http.StatusInternalServerError, "talk-back track: %v", err)
			}
			continue
		}
		if pub.sources[kind] != nil {
			return fail(http.StatusBadRequest, "the offer has more than one %s section to send; a box publishes one of each", kind)
		}
		pub.sources[kind] = newSource(kind, codec, s.cfg.PacketCache, nil)
	}
	if err := answer(ctx, pc); err != nil {
		return fail(http.StatusBadRequest, "%v", err)
	}
	return pub, nil
}

// preferredCodec picks, among the codecs negotiated for a media section, the one
// earliest in the hub's own preference.
func preferredCodec(negotiated []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	for _, want := range supportedCodecs() {
		for _, c := range negotiated {
			if sameFormat(c, want) {
				return c, true
			}
		}
	}
	return webrtc.RTPCodecParameters{}, false
}

// answer creates and sets the local answer and waits until its candidates are in
// it: the hub is ICE-lite on fixed sockets, so gathering takes no time, and a
// complete answer spares the client a trickle round trip.
func answer(ctx context.Context, pc *webrtc.PeerConnection) error {
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	select {
	case <-gathered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gathering candidates: %w", ctx.Err())
	}
}

// startPublication wires a negotiated box connection into its feed.
func (s *SFU) startPublication(pub *publication) {
	pub.pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		src := pub.sources[tr.Kind()]
		if src == nil {
			return
		}
		go drainRTCP(recv)
		s.readTrack(pub, src, tr)
	})
	pub.pc.OnDataChannel(func(dc *webrtc.DataChannel) { s.publisherChannel(pub, dc) })
	pub.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.log.Info("sfu: box connection", "device", pub.device, "session", pub.id, "state", st)
		switch st {
		case webrtc.PeerConnectionStateFailed:
			s.endPublication(pub, fmt.Sprintf("no media from the box for %s", s.cfg.SessionTimeout), true)
		case webrtc.PeerConnectionStateClosed:
			s.endPublication(pub, "connection closed", true)
		}
	})
}

// readTrack copies a box's track into its source until the track ends.
func (s *SFU) readTrack(pub *publication, src *source, tr *webrtc.TrackRemote) {
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		lost := src.lost.Load()
		src.push(p, time.Now())
		s.metrics.bytesIn.Add(float64(p.MarshalSize()))
		if d := src.lost.Load() - lost; d > 0 {
			s.metrics.packetsLost.Add(float64(d))
		}
	}
}

// drainRTCP reads the box's sender reports so that the interceptors see them and
// the receiver's buffer never fills.
func drainRTCP(recv *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := recv.Read(buf); err != nil {
			return
		}
	}
}

// publisherChannel relays a box's data channel: every message goes, byte for byte,
// to the viewers' channels of the same label, then to OnPublisherMessage, whose
// reply goes back to the box.
func (s *SFU) publisherChannel(pub *publication, dc *webrtc.DataChannel) {
	label := dc.Label()
	pub.mu.Lock()
	if len(pub.channels) >= maxChannels || pub.channels[label] != nil {
		pub.mu.Unlock()
		s.log.Warn("sfu: box opened one data channel too many, closing it", "device", pub.device, "label", label)
		dc.Close()
		return
	}
	pub.channels[label] = dc
	pub.mu.Unlock()
	dc.OnMessage(func(msg webrtc.DataChannelMessage) {
		s.metrics.messagesIn.Inc()
		for _, v := range pub.feed.viewerList() {
			v.sendData(label, msg)
		}
		if s.cfg.OnPublisherMessage == nil {
			return
		}
		if reply := s.cfg.OnPublisherMessage(pub.device, label, msg.Data); reply != nil {
			if err := dc.Send(reply); err != nil {
				s.log.Warn("sfu: reply to box failed", "device", pub.device, "label", label, "err", err)
			}
		}
	})
}

// SendToPublisher sends data to the box publishing as device, on its data channel
// label (e.g. "control" for a doctor's message to the crew).
func (s *SFU) SendToPublisher(device, label string, data []byte) error {
	s.mu.Lock()
	f := s.feeds[device]
	s.mu.Unlock()
	if f == nil {
		return fmt.Errorf("sfu: device %s is not publishing", device)
	}
	f.mu.Lock()
	pub := f.pub
	f.mu.Unlock()
	if pub == nil {
		return fmt.Errorf("sfu: device %s is not publishing", device)
	}
	pub.mu.Lock()
	dc := pub.channels[label]
	pub.mu.Unlock()
	if dc == nil {
		return fmt.Errorf("sfu: device %s has no data channel %q", device, label)
	}
	if err := dc.Send(data); err != nil {
		return fmt.Errorf("sfu: send to device %s on %q: %w", device, label, err)
	}
	return nil
}
