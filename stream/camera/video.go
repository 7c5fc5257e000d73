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
	depack   *h264.Depacketizer
	status   *statusBox
	lastTS   uint32
	haveTS   bool
	nominal  time.Duration // the last sensible gap, for when timestamps go backwards
	interval frameInterval
	spsFrame time.Duration // the frame duration the SPS's VUI gives, or 0
	lastSPS  []byte
	sawB     bool
	last     time.Time // when the last frame was emitted
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
		if au.IDR {
			v.noteParameterSets()
		}
		if au.BFrame && !v.sawB {
			v.sawB = true
			v.status.update(func(s *Status) { s.BFrames = true; s.addProblem(problemB, false) })
		}
		emit(Frame{Codec: H264, Data: au.Data, Keyframe: au.IDR, Received: now, Duration: v.duration(au.Timestamp)})
	})
	v.noteStats()
}

// duration returns how long a picture plays. Without B-frames it is the gap since the
// previous picture, which follows a camera that drops or varies its frame rate. With
// B-frames the timestamps are presentation times in decoding order, so their gaps go
// back and forth; the frame interval is then the SPS's (VUI timing), or else the
// smallest forward gap of the last hundred or so pictures, so that the durations add
// up to the time that passed.
func (v *rtpVideo) duration(ts uint32) time.Duration {
	d := v.nominal
	if v.haveTS {
		gap := time.Duration(int32(ts-v.lastTS)) * time.Second / h264Clock
		if gap > 0 && gap <= maxFrameGap {
			d = gap
			if gap < time.Second {
				v.nominal = gap
				v.interval.note(gap)
			}
		}
	}
	v.lastTS, v.haveTS = ts, true
	if v.sawB {
		if v.spsFrame > 0 {
			return v.spsFrame
		}
		if i, ok := v.interval.get(); ok {
			return i
		}
	}
	return d
}

// frameInterval is the smallest forward timestamp gap over the last one or two
// windows of intervalWindow pictures.
type frameInterval struct {
	cur, prev time.Duration // 0: none yet
	n         int
}

const intervalWindow = 64

func (f *frameInterval) note(gap time.Duration) {
	if f.cur == 0 || gap < f.cur {
		f.cur = gap
	}
	if f.n++; f.n == intervalWindow {
		f.prev, f.cur, f.n = f.cur, 0, 0
	}
}

func (f *frameInterval) get() (time.Duration, bool) {
	switch {
	case f.cur == 0:
		return f.prev, f.prev != 0
	case f.prev == 0 || f.cur < f.prev:
		return f.cur, true
	}
	return f.prev, true
}

func (v *rtpVideo) noteParameterSets() {
	sps, _ := v.depack.ParameterSets()
	if sps == nil || bytes.Equal(sps, v.lastSPS) {
		return
	}
	v.lastSPS = bytes.Clone(sps)
	if parsed, err := h264.ParseSPS(sps); err == nil {
		v.spsFrame, _ = parsed.FrameDuration()
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
