package camera

import (
	"time"

	"github.com/pion/rtp"
)

// rtpAudio turns audio RTP packets into Frames, one a packet, with durations from the
// timestamps (or, for G.711, from the payload: one byte a sample).
type rtpAudio struct {
	codec  Codec
	clock  uint32
	lastTS uint32
	have   bool
}

func newRTPAudio(codec Codec, clock uint32) *rtpAudio {
	if clock == 0 {
		clock = 8000
	}
	if codec == Opus {
		clock = 48000 // RFC 7587: Opus always uses a 48 kHz RTP clock
	}
	return &rtpAudio{codec: codec, clock: clock}
}

// defaultAudioPacket is the packet duration assumed when timestamps do not tell.
const defaultAudioPacket = 20 * time.Millisecond

func (a *rtpAudio) push(p *rtp.Packet, emit func(Frame)) {
	if len(p.Payload) == 0 {
		return
	}
	d := defaultAudioPacket
	switch {
	case a.codec == PCMU || a.codec == PCMA:
		d = time.Duration(len(p.Payload)) * time.Second / time.Duration(a.clock)
	case a.have:
		if gap := time.Duration(int32(p.Timestamp-a.lastTS)) * time.Second / time.Duration(a.clock); gap > 0 && gap <= 120*time.Millisecond {
			d = gap
		}
	}
	a.lastTS, a.have = p.Timestamp, true
	emit(Frame{Codec: a.codec, Data: p.Payload, Duration: d, Received: time.Now()})
}
