package camera

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"

	"lifeline/stream/rtsp"
)

// ErrNotForwardable is returned by Run when the camera sends nothing a browser can
// show as it is (H.265, MJPEG); Status says what and what to change.
var ErrNotForwardable = errors.New("camera: video cannot be forwarded as it is")

// RTSPSource plays an RTSP camera (rtsp://[user:pass@]host[:port]/path): its H.264
// video and, when a browser can play it as it is, its audio (Opus, PCMU, PCMA), all
// interleaved on the RTSP connection.
type RTSPSource struct {
	url    string
	cfg    rtsp.Config
	status *statusBox
	// wantKeyframe asks the running session to send a PLI.
	wantKeyframe atomic.Bool
}

// NewRTSPSource returns a source for the camera at rawURL; it connects when Run is
// called.
func NewRTSPSource(rawURL string, cfg rtsp.Config) *RTSPSource {
	return &RTSPSource{url: rawURL, cfg: cfg, status: newStatusBox(rawURL)}
}

// Status reports what the camera sends and what of it cannot be forwarded.
func (s *RTSPSource) Status() Status { return s.status.get() }

// RequestKeyframe asks the camera for an IDR picture with an RTCP PLI (RFC 4585);
// cameras that ignore it send their next IDR on their own schedule.
func (s *RTSPSource) RequestKeyframe() { s.wantKeyframe.Store(true) }

// pliInterval bounds how often the source asks the camera for a keyframe.
const pliInterval = time.Second

// Run connects, plays and emits frames until ctx ends (nil) or the camera fails.
func (s *RTSPSource) Run(ctx context.Context, emit func(Frame)) error {
	err := s.run(ctx, emit)
	if ctx.Err() != nil {
		err = nil
	}
	s.status.update(func(st *Status) {
		st.Connected = false
		if err != nil {
			st.LastError = err.Error()
		}
	})
	return err
}

func (s *RTSPSource) run(ctx context.Context, emit func(Frame)) error {
	conn, err := rtsp.Dial(ctx, s.url, s.cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	desc := conn.Description()
	video := desc.Video()
	if video == nil {
		return fmt.Errorf("camera %s: its SDP offers no video", redact(s.url))
	}
	if !strings.EqualFold(video.Codec, "H264") {
		s.status.update(func(st *Status) { st.noteCodec(strings.ToUpper(video.Codec)) })
		return fmt.Errorf("camera %s sends %s: %w", redact(s.url), video.Codec, ErrNotForwardable)
	}
	if err := conn.Setup(video); err != nil {
		return err
	}
	audio := s.setupAudio(conn, desc)
	if err := conn.Play(); err != nil {
		return err
	}
	v := newRTPVideo(s.status, video.SPS, video.PPS)
	var a *rtpAudio
	if audio != nil {
		a = newRTPAudio(Codec(audioCodecName(audio.Codec)), audio.ClockRate)
	}
	var lastPLI time.Time
	for {
		p, err := conn.ReadPacket()
		if err != nil {
			return err
		}
		switch {
		case p.RTP == nil:
			continue // RTCP from the camera: its sender reports are not needed
		case p.Track == video:
			if p.RTP.PayloadType != video.PayloadType {
				continue
			}
			v.push(p.RTP, emit)
			// A request made within pliInterval of the last PLI waits for the next.
			if time.Since(lastPLI) >= pliInterval && (v.depack.NeedKeyframe() || s.wantKeyframe.Swap(false)) {
				lastPLI = time.Now()
				s.sendPLI(conn, video, p.RTP.SSRC)
			}
		case p.Track == audio && p.RTP.PayloadType == audio.PayloadType:
			a.push(p.RTP, emit)
		}
	}
}

// setupAudio sets up the camera's audio when a browser can play it as it is, and says
// so in the status when it cannot. A failed audio SETUP leaves the video alone.
func (s *RTSPSource) setupAudio(conn *rtsp.Conn, desc rtsp.Description) *rtsp.Track {
	audio := desc.Audio()
	if audio == nil {
		for _, t := range desc.Tracks {
			if t.Media == "audio" {
				s.status.update(func(st *Status) { st.addProblem(fmt.Sprintf(problemAudio, t.Codec), true) })
				break
			}
		}
		return nil
	}
	if err := conn.Setup(audio); err != nil {
		s.status.update(func(st *Status) { st.LastError = "audio: " + err.Error() })
		return nil
	}
	s.status.update(func(st *Status) { st.Audio = Codec(audioCodecName(audio.Codec)) })
	return audio
}

func (s *RTSPSource) sendPLI(conn *rtsp.Conn, t *rtsp.Track, mediaSSRC uint32) {
	pkt, err := (&rtcp.PictureLossIndication{MediaSSRC: mediaSSRC}).Marshal()
	if err == nil {
		_ = conn.WriteRTCP(t, pkt) // a camera that cannot take it sends its next IDR anyway
	}
}

// audioCodecName spells an SDP audio encoding name as Codec does.
func audioCodecName(name string) string {
	switch strings.ToUpper(name) {
	case "OPUS":
		return string(Opus)
	case "PCMU":
		return string(PCMU)
	case "PCMA":
		return string(PCMA)
	}
	return name
}
