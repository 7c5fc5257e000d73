package whip

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"lifeline/stream/camera"
)

// Payload types the box offers. Fixed numbers keep the offer readable in logs; the
// answer's numbers win where the far end maps them differently.
const (
	payloadH264 = 102
	payloadOpus = 111
	payloadPCMU = 0
	payloadPCMA = 8
)

// tracks are the box's media tracks, which outlive sessions: a new session adds the same
// tracks to its peer connection, so the camera side writes without knowing about
// sessions. It also gates video frames against the video budget.
type tracks struct {
	video      *webrtc.TrackLocalStaticSample
	audio      *webrtc.TrackLocalStaticSample // nil without audio
	audioCodec camera.Codec

	mu        sync.Mutex
	connected bool // a session is connected; frames written otherwise are dropped
	gate      videoGate

	sent, dropped, overBudget atomic.Uint64
}

func newMedia(audio camera.Codec) (*tracks, error) {
	v, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, "video", "lifeline")
	if err != nil {
		return nil, fmt.Errorf("whip: video track: %w", err)
	}
	m := &tracks{video: v, audioCodec: audio}
	if audio != "" {
		a, err := webrtc.NewTrackLocalStaticSample(audioCapability(audio), "audio", "lifeline")
		if err != nil {
			return nil, fmt.Errorf("whip: audio track: %w", err)
		}
		m.audio = a
	}
	m.gate.waitKeyframe = true
	return m, nil
}

// audioCapability is how the box names its audio codec in the offer. G.711 goes
// without a channel count ("PCMU/8000"), as browsers and the hub write it: pion matches
// codecs by channel count too, and "PCMU/8000/1" would find no match at the hub.
func audioCapability(c camera.Codec) webrtc.RTPCodecCapability {
	switch c {
	case camera.Opus:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
	case camera.PCMA:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}
	default:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}
	}
}

// audioParameters is the camera audio codec as the box offers it.
func audioParameters(c camera.Codec) webrtc.RTPCodecParameters {
	pt := map[camera.Codec]webrtc.PayloadType{camera.Opus: payloadOpus, camera.PCMU: payloadPCMU, camera.PCMA: payloadPCMA}[c]
	return webrtc.RTPCodecParameters{RTPCodecCapability: audioCapability(c), PayloadType: pt}
}

// register puts the box's codecs, and only those, into a media engine, so the far end
// cannot pick one the camera does not send.
func (m *tracks) register(me *webrtc.MediaEngine, profileLevelID string) error {
	feedback := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}, {Type: "transport-cc"}}
	h264 := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profileLevelID,
			RTCPFeedback: feedback,
		},
		PayloadType: payloadH264,
	}
	if err := me.RegisterCodec(h264, webrtc.RTPCodecTypeVideo); err != nil {
		return fmt.Errorf("whip: register H.264: %w", err)
	}
	if m.audio == nil {
		return nil
	}
	audio := audioParameters(m.audioCodec)
	if err := me.RegisterCodec(audio, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("whip: register %s: %w", m.audioCodec, err)
	}
	return nil
}

// setConnected opens or closes the gate. A newly connected session starts at a
// keyframe: nothing before it can be decoded.
func (m *tracks) setConnected(c bool) {
	m.mu.Lock()
	if c && !m.connected {
		m.gate.waitKeyframe = true
	}
	m.connected = c
	m.mu.Unlock()
}

func (m *tracks) setBudget(bps int) {
	m.mu.Lock()
	m.gate.setBudget(bps, time.Now())
	m.mu.Unlock()
}

func (m *tracks) counts() (sent, dropped, overBudget uint64) {
	return m.sent.Load(), m.dropped.Load(), m.overBudget.Load()
}

// WriteVideo sends one H.264 access unit (Annex B, SPS and PPS before each IDR) as the
// camera encoded it. Frames are dropped, not queued, while no session is connected,
// when the video budget is spent, and until the next keyframe after a drop: a frame
// late or without its reference is useless to a doctor, and a queue would delay the
// vitals behind it.
func (p *Publisher) WriteVideo(f camera.Frame) error {
	if f.Codec != camera.H264 {
		return fmt.Errorf("whip: video frame in %s; only H.264 is forwarded", f.Codec)
	}
	if f.Duration <= 0 {
		return errors.New("whip: video frame without a duration")
	}
	m := p.media
	m.mu.Lock()
	admit, startedWaiting, overBudget := false, false, false
	if m.connected {
		admit, startedWaiting = m.gate.admit(time.Now(), len(f.Data), f.Keyframe)
		overBudget = !admit && m.gate.overBudget
	}
	m.mu.Unlock()
	if overBudget {
		m.overBudget.Add(1)
	}
	if startedWaiting {
		p.keyframeWanted()
	}
	if !admit {
		// Keep the RTP clock with the camera's: the far end's jitter buffer must see
		// the time that passed, not frames squeezed together.
		m.dropped.Add(1)
		return m.video.WriteSample(media.Sample{Duration: f.Duration})
	}
	if err := m.video.WriteSample(media.Sample{Data: f.Data, Duration: f.Duration}); err != nil {
		return fmt.Errorf("whip: send video frame: %w", err)
	}
	m.sent.Add(1)
	return nil
}

// WriteAudio sends one audio packet's payload as the source encoded it. Audio is never
// gated by the video budget: its reserve is kept out of it.
func (p *Publisher) WriteAudio(f camera.Frame) error {
	m := p.media
	if m.audio == nil {
		return errors.New("whip: audio written but no audio codec configured")
	}
	if f.Codec != m.audioCodec {
		return fmt.Errorf("whip: audio frame in %s, session negotiated %s", f.Codec, m.audioCodec)
	}
	if err := m.audio.WriteSample(media.Sample{Data: f.Data, Duration: f.Duration}); err != nil {
		return fmt.Errorf("whip: send audio: %w", err)
	}
	return nil
}
