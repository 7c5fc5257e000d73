package camera

import (
	"bytes"
	"time"

	"github.com/pion/rtp"

	"lifeline/stream/h264"
)

// h264Clock is the RTP clock rate of H.264 (RFC 6184).
const h264Clock = 90000

// maxFrameGap bounds the duration taken from a timestamp gap: longer means the camera
// restarted its clock, not that a picture lasts that long.
const maxFrameGap = 5 * time.Second

// rtpVideo turns one camera's H.264 RTP packets into Frames with durations from the
// RTP timestamps, and keeps the source's Status up to date.
type rtpVideo struct {
	depack  *h264.Depacketizer
	status  *statusBox
	lastTS  uint32
	haveTS  bool
	nominal time.Duration // the last sensible gap, for when timestamps go backwards
	lastSPS []byte
	sawB    bool
	last    time.Time // when the last frame was emitted
}

func newRTPVideo(status *statusBox, sps, pps []byte) *rtpVideo {
	v := &rtpVideo{depack: h264.NewDepacketizer(), status: status, nominal: time.Second / 30}
	if sps != nil && pps != nil {
		v.depack.SetParameterSets(sps, pps)
		v.noteParameterSets()
	}
	return v
}

// push depacketizes one packet and emits the frames it completes.
func (v *rtpVideo) push(p *rtp.Packet, emit func(Frame)) {
	_ = v.depack.Push(p, func(au h264.AccessUnit) { // a bad packet drops its picture; Stats count it
		now := time.Now()
		v.last = now
		f := Frame{Codec: H264, Data: au.Data, Keyframe: au.IDR, Received: now, Duration: v.duration(au.Timestamp)}
		if au.IDR {
			v.noteParameterSets()
		}
		if au.BFrame && !v.sawB {
			v.sawB = true
			v.status.update(func(s *Status) { s.BFrames = true; s.addProblem(problemB, true) })
		}
		emit(f)
	})
	v.noteStats()
}

// duration returns the gap since the previous picture, or the last sensible gap when
// the timestamps went backwards (B-frames send presentation times) or jumped.
func (v *rtpVideo) duration(ts uint32) time.Duration {
	d := v.nominal
	if v.haveTS {
		gap := time.Duration(int32(ts-v.lastTS)) * time.Second / h264Clock
		if gap > 0 && gap <= maxFrameGap {
			d = gap
			if gap < time.Second {
				v.nominal = gap
			}
		}
	}
	v.lastTS, v.haveTS = ts, true
	return d
}

func (v *rtpVideo) noteParameterSets() {
	sps, _ := v.depack.ParameterSets()
	if sps == nil || bytes.Equal(sps, v.lastSPS) {
		return
	}
	v.lastSPS = bytes.Clone(sps)
	if parsed, err := h264.ParseSPS(sps); err == nil {
		v.status.update(func(s *Status) { s.noteSPS(parsed) })
	}
}

func (v *rtpVideo) noteStats() {
	st := v.depack.Stats()
	need := v.depack.NeedKeyframe()
	last := v.last
	v.status.update(func(s *Status) {
		s.LastFrame = last
		s.Frames, s.Keyframes, s.Dropped, s.LostPackets = st.AccessUnits, st.Keyframes, st.Dropped, st.Lost
		s.WaitingForKeyframe = need
		if st.AccessUnits > 0 {
			s.Connected = true
		}
		if st.NoParameterSets > 0 && st.Keyframes == 0 {
			s.addProblem(problemNoPS, false)
		}
	})
}
