package camera

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"slices"
	"sync"
	"time"

	"lifeline/stream/camera/oggopus"
	"lifeline/stream/h264"
)

// The demo's test clip: 10 s of ffmpeg's testsrc2 at 640x360, 30 fps, H.264
// Constrained Baseline 3.1, an IDR every 2 s, with a burnt-in frame counter and time.
// clip/README.md has the ffmpeg command that made it.
//
//go:embed clip/clip.h264
var clipH264 []byte

// ClipRate is the clip's frame rate.
const ClipRate = 30

// The clip's sound: a 440 Hz tone with a higher beep every second, Opus in Ogg.
//
//go:embed clip/clip.opus
var clipOpus []byte

var (
	clipOnce  sync.Once
	clipUnits []h264.AccessUnit
	soundOnce sync.Once
	clipAudio []oggopus.Packet
)

// clipSound reads the embedded clip's sound once.
func clipSound() []oggopus.Packet {
	soundOnce.Do(func() {
		if s, err := oggopus.Read(clipOpus); err == nil { // checked by TestEmbeddedClip
			clipAudio = s.Packets
		}
	})
	return clipAudio
}

// clipAccessUnits splits the embedded clip once.
func clipAccessUnits() []h264.AccessUnit {
	clipOnce.Do(func() { clipUnits = h264.SplitAccessUnits(clipH264, h264Clock/ClipRate) })
	return clipUnits
}

// MaxClipFileSize bounds a clip read from a file: it is held in memory whole.
const MaxClipFileSize = 64 << 20

// ClipSource plays an H.264 clip in a loop, paced in real time: the embedded one for
// the demo, or a recording of the site's own camera for trying a viewer with it.
type ClipSource struct {
	url    string
	aus    []h264.AccessUnit
	frame  time.Duration
	audio  []oggopus.Packet // the embedded clip's sound; none for a file
	status *statusBox
}

// NewClipSource returns a source of the embedded clip, with its sound.
func NewClipSource() *ClipSource {
	s, _ := newClipSource("clip:", clipAccessUnits(), ClipRate) // the embedded clip is checked by its tests
	s.audio = clipSound()
	s.status.update(func(st *Status) { st.Audio = Opus })
	return s
}

// NewClipFileSource returns a source of the Annex B H.264 file at path (what
// `ffmpeg -c:v libx264 -f h264` writes), played at fps frames a second.
func NewClipFileSource(path string, fps int) (*ClipSource, error) {
	if fps <= 0 || fps > 240 {
		return nil, fmt.Errorf("camera: clip %s: frame rate %d outside 1-240", path, fps)
	}
	data, err := readBounded(path, MaxClipFileSize)
	if err != nil {
		return nil, fmt.Errorf("camera: clip: %w", err)
	}
	return newClipSource("clip:"+path, h264.SplitAccessUnits(data, uint32(h264Clock/fps)), fps)
}

func newClipSource(url string, aus []h264.AccessUnit, fps int) (*ClipSource, error) {
	if len(aus) == 0 || !aus[0].IDR {
		return nil, fmt.Errorf("camera: clip %s does not start with an IDR picture", url)
	}
	s := &ClipSource{url: url, aus: aus, frame: time.Second / time.Duration(fps), status: newStatusBox(url)}
	s.status.update(func(st *Status) {
		for _, nal := range aus[0].NALUs() {
			if h264.TypeOf(nal) == h264.NALSPS {
				if sps, err := h264.ParseSPS(nal); err == nil {
					st.noteSPS(sps)
				}
			}
		}
		for _, au := range aus {
			if au.BFrame {
				st.BFrames = true
				st.addProblem(problemB, false)
				break
			}
		}
	})
	return s, nil
}

// Status reports the clip's format and frames played.
func (s *ClipSource) Status() Status { return s.status.get() }

// maxLag is how far behind real time the clip may fall (a slow consumer) before it
// stops trying to catch up and plays on from now.
const maxLag = time.Second

// clipEvent is one frame of the clip's timeline: a picture or an audio packet, at its
// time from the start of the loop.
type clipEvent struct {
	at    time.Duration
	frame Frame
}

// timeline merges the pictures and the audio packets of one pass in time order. The
// pass lasts as long as the pictures; audio beyond it is left out, so that sound and
// picture start each loop together.
func (s *ClipSource) timeline() (events []clipEvent, period time.Duration) {
	period = time.Duration(len(s.aus)) * s.frame
	events = make([]clipEvent, 0, len(s.aus)+len(s.audio))
	for i, au := range s.aus {
		events = append(events, clipEvent{at: time.Duration(i) * s.frame, frame: Frame{Codec: H264, Data: au.Data, Duration: s.frame, Keyframe: au.IDR}})
	}
	var at time.Duration
	for _, p := range s.audio {
		if at >= period {
			break
		}
		events = append(events, clipEvent{at: at, frame: Frame{Codec: Opus, Data: p.Data, Duration: p.Duration}})
		at += p.Duration
	}
	slices.SortStableFunc(events, func(a, b clipEvent) int { return cmp.Compare(a.at, b.at) })
	return events, period
}

// Run emits the clip's pictures (and the embedded clip's sound) at their times, in
// real time, from the first IDR, looping at the end (which is followed by the clip's
// first IDR, so the loop is seamless), until ctx ends. Frames share the clip's memory:
// emit must not change Data.
func (s *ClipSource) Run(ctx context.Context, emit func(Frame)) error {
	events, period := s.timeline()
	s.status.update(func(st *Status) { st.Connected = true })
	defer s.status.update(func(st *Status) { st.Connected = false })
	timer := time.NewTimer(0)
	defer timer.Stop()
	start := time.Now()
	for pass := 0; ; pass++ {
		for _, ev := range events {
			due := start.Add(time.Duration(pass)*period + ev.at)
			if lag := time.Since(due); lag > maxLag {
				start = start.Add(lag) // a consumer this slow: play on from now
				due = due.Add(lag)
			}
			timer.Reset(time.Until(due))
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
			f := ev.frame
			f.Received = time.Now()
			emit(f)
			if f.Codec == H264 {
				s.noteFrame(f)
			}
		}
	}
}

func (s *ClipSource) noteFrame(f Frame) {
	s.status.update(func(st *Status) {
		st.Frames++
		if f.Keyframe {
			st.Keyframes++
		}
		st.LastFrame = f.Received
	})
}
