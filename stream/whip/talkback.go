package whip

import (
	"fmt"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lifeline/stream/camera"
)

// Talk-back: the box offers to receive one audio stream, the voice of the doctor the
// hospital lets speak (push-to-talk), in G.711 µ-law. G.711 is what ambulance
// intercoms and SIP gateways take as it is, it decodes to PCM in a few lines of Go (no
// C library on the box), and every browser sends it; voice at 8 kHz is what a phone
// call carries, enough for guidance over a siren.

// TalkbackCodec is the codec the box takes talk-back in.
var TalkbackCodec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}

// registerTalkback adds the talk-back codec to the media engine when the box sends no
// audio of its own in it (a camera's PCMU is registered already).
func (m *tracks) registerTalkback(me *webrtc.MediaEngine) error {
	if m.audio != nil && m.audioCodec == camera.PCMU {
		return nil
	}
	c := webrtc.RTPCodecParameters{RTPCodecCapability: TalkbackCodec, PayloadType: payloadPCMU}
	if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("whip: register talk-back codec: %w", err)
	}
	return nil
}

// addTalkback adds the receive-only audio section and hands every packet the hub
// sends on it to OnTalkback. The camera's audio section keeps its own codec: each
// transceiver is limited to its codec, so the far end cannot swap them.
func (p *Publisher) addTalkback(s *session, camAudio *webrtc.RTPTransceiver) error {
	if camAudio != nil {
		if err := camAudio.SetCodecPreferences([]webrtc.RTPCodecParameters{audioParameters(p.media.audioCodec)}); err != nil {
			return fmt.Errorf("whip: camera audio codec: %w", err)
		}
	}
	tr, err := s.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	if err != nil {
		return fmt.Errorf("whip: add talk-back: %w", err)
	}
	if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{{RTPCodecCapability: TalkbackCodec, PayloadType: payloadPCMU}}); err != nil {
		return fmt.Errorf("whip: talk-back codec: %w", err)
	}
	s.pc.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if track.Kind() != webrtc.RTPCodecTypeAudio {
			return
		}
		for {
			pkt, _, err := track.ReadRTP()
			if err != nil {
				return
			}
			p.cfg.OnTalkback(pkt)
		}
	})
	return nil
}

// TalkbackPacket is what OnTalkback receives: one RTP packet of G.711 µ-law.
type TalkbackPacket = rtp.Packet
