package sfu

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// talkback is the audio a box offered to receive: the microphone of the one viewer
// the hub chose (push-to-talk), rewritten into one continuous stream however often
// the speaker changes.
type talkback struct {
	track *webrtc.TrackLocalStaticRTP
	codec webrtc.RTPCodecParameters

	mu      sync.Mutex
	speaker *viewer
	from    uint32 // SSRC the offsets were fixed for; 0 until the speaker's first packet
	seqOff  uint16
	tsOff   uint32
	lastSeq uint16
	lastTS  uint32
	lastAt  time.Time
	sentAny bool
}

// newTalkback gives the box's receive-only audio section a track to carry the
// speaker's voice.
func newTalkback(api *webrtc.API, pc *webrtc.PeerConnection, t *webrtc.RTPTransceiver, codec webrtc.RTPCodecParameters) (*talkback, error) {
	track, err := webrtc.NewTrackLocalStaticRTP(codec.RTPCodecCapability, "talkback", "lifeline-hub")
	if err != nil {
		return nil, err
	}
	sender, err := api.NewRTPSender(track, pc.SCTP().Transport())
	if err != nil {
		return nil, err
	}
	if err := t.SetSender(sender, track); err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	return &talkback{track: track, codec: codec}, nil
}

// forward sends one packet of v's microphone to the box if v is the speaker.
func (tb *talkback) forward(v *viewer, p *rtp.Packet) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.speaker != v {
		return
	}
	now := time.Now()
	if tb.from != p.SSRC {
		// A new speaker (or a new microphone stream): continue the box's numbering.
		seq, ts := uint16(0), uint32(0)
		if tb.sentAny {
			seq = tb.lastSeq + 1
			ts = tb.lastTS + max(uint32(now.Sub(tb.lastAt).Seconds()*float64(tb.codec.ClockRate)), 1)
		}
		tb.from, tb.seqOff, tb.tsOff = p.SSRC, seq-p.SequenceNumber, ts-p.Timestamp
	}
	out := &rtp.Packet{Header: p.Header, Payload: p.Payload}
	out.Extension, out.Extensions = false, nil
	out.SequenceNumber += tb.seqOff
	out.Timestamp += tb.tsOff
	if !tb.sentAny || seqNewer(out.SequenceNumber, tb.lastSeq) {
		tb.lastSeq, tb.lastTS, tb.lastAt, tb.sentAny = out.SequenceNumber, out.Timestamp, now, true
	}
	_ = tb.track.WriteRTP(out)
}

// setSpeaker makes v (nil: nobody) the one whose microphone the box hears.
func (tb *talkback) setSpeaker(v *viewer) (previous *viewer) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	previous, tb.speaker, tb.from = tb.speaker, v, 0
	return previous
}

// readMicrophone reads a viewer's microphone track, handing each packet to its
// box's talk-back while the viewer is the speaker, and dropping it otherwise.
func (s *SFU) readMicrophone(v *viewer, tr *webrtc.TrackRemote) {
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		v.feed.mu.Lock()
		pub := v.feed.pub
		v.feed.mu.Unlock()
		if pub != nil && pub.talkback != nil {
			pub.talkback.forward(v, p)
		}
	}
}

// ErrNoTalkback is returned by Talkback when the box did not offer to receive audio.
var ErrNoTalkback = errors.New("sfu: the box offered no audio to receive")

// Talkback makes the viewer session (the ID in its WHEP resource URL) the one whose
// microphone the crew of device hears, replacing any other speaker; an empty
// session stops talk-back. Deciding who may talk is the caller's: typically a
// doctor's push-to-talk message on the control channel, checked against the
// doctor's role.
func (s *SFU) Talkback(device, session string) error {
	s.mu.Lock()
	f, v := s.feeds[device], s.viewers[session]
	s.mu.Unlock()
	if f == nil {
		return fmt.Errorf("sfu: device %s is not publishing", device)
	}
	f.mu.Lock()
	pub := f.pub
	f.mu.Unlock()
	switch {
	case pub == nil:
		return fmt.Errorf("sfu: device %s is not publishing", device)
	case pub.talkback == nil:
		return fmt.Errorf("%w (device %s)", ErrNoTalkback, device)
	case session == "":
		if prev := pub.talkback.setSpeaker(nil); prev != nil {
			s.event(TalkbackStopped, device, prev.id, prev.who, prev.remote, "")
		}
		return nil
	case v == nil || v.device != device:
		return fmt.Errorf("sfu: no viewer session %s of device %s", session, device)
	}
	v.mu.Lock()
	mic := v.mic
	v.mu.Unlock()
	if mic == nil {
		return fmt.Errorf("sfu: viewer session %s sends no audio", session)
	}
	if !sameFormat(mic.Codec(), pub.talkback.codec) {
		return fmt.Errorf("sfu: the viewer sends %s, the box takes talk-back as %s", mic.Codec().MimeType, pub.talkback.codec.MimeType)
	}
	if prev := pub.talkback.setSpeaker(v); prev != nil && prev != v {
		s.event(TalkbackStopped, device, prev.id, prev.who, prev.remote, "another viewer speaks")
	}
	s.event(TalkbackStarted, device, v.id, v.who, v.remote, "")
	return nil
}

// stopTalkingIfSpeaker ends talk-back when its speaker leaves.
func (s *SFU) stopTalkingIfSpeaker(v *viewer) {
	v.feed.mu.Lock()
	pub := v.feed.pub
	v.feed.mu.Unlock()
	if pub == nil || pub.talkback == nil {
		return
	}
	pub.talkback.mu.Lock()
	speaking := pub.talkback.speaker == v
	if speaking {
		pub.talkback.speaker = nil
	}
	pub.talkback.mu.Unlock()
	if speaking {
		s.event(TalkbackStopped, v.device, v.id, v.who, v.remote, "the viewer left")
	}
}
