package whip

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/internal/peers"
	"lifeline/stream/camera"
)

// clipRate is the frame rate of the test clip, so that decoded frames can be compared
// with what was fed.
const clipRate = 30

// makeClip encodes a short H.264 clip with ffmpeg, as an IP camera's baseline stream
// (no B-frames, an IDR every second with SPS and PPS before it), and returns it as
// access units.
func makeClip(t *testing.T) []camera.Frame {
	t.Helper()
	ffmpeg := peers.Need(t, "ffmpeg")[0]
	out := filepath.Join(t.TempDir(), "clip.h264")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=size=640x360:rate=30", "-t", "4",
		"-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p",
		"-f", "h264", "-y", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	frames := splitAccessUnits(data)
	if len(frames) != 4*clipRate || !frames[0].Keyframe {
		t.Fatalf("clip split into %d access units (want %d, first an IDR)", len(frames), 4*clipRate)
	}
	return frames
}

// splitAccessUnits groups an Annex B stream into access units: a new one starts at an
// SPS, PPS, SEI or access unit delimiter after a slice, or at a slice whose
// first_mb_in_slice is 0 (the first bit of its header, ue(v) 0, is 1).
func splitAccessUnits(stream []byte) []camera.Frame {
	var frames []camera.Frame
	var cur []byte
	hasSlice, key := false, false
	flush := func() {
		if hasSlice {
			frames = append(frames, camera.Frame{Codec: camera.H264, Data: cur, Duration: time.Second / clipRate, Keyframe: key})
		}
		cur, hasSlice, key = nil, false, false
	}
	for _, nal := range splitNALs(stream) {
		typ := nal[0] & 0x1f
		switch {
		case typ == 1 || typ == 5:
			if hasSlice && len(nal) > 1 && nal[1]&0x80 != 0 {
				flush()
			}
			hasSlice = true
			key = key || typ == 5
		case typ == 6 || typ == 7 || typ == 8 || typ == 9:
			if hasSlice {
				flush()
			}
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, nal...)
	}
	flush()
	return frames
}

func splitNALs(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	for i := 0; i+3 <= len(b); {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				nals = append(nals, bytes.TrimRight(b[start:i], "\x00"))
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(b) {
		nals = append(nals, b[start:])
	}
	return nals
}

// makeTone encodes a 440 Hz tone as G.711 (µ-law or A-law, as codec says) and
// returns it in 20 ms packets, as a camera's microphone sends it.
func makeTone(t *testing.T, codec camera.Codec) []camera.Frame {
	t.Helper()
	ffmpeg := peers.Need(t, "ffmpeg")[0]
	out := filepath.Join(t.TempDir(), "tone.ul")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000", "-t", "2",
		"-c:a", "pcm_"+g711[codec], "-f", g711[codec], "-y", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var frames []camera.Frame
	for len(data) >= 160 {
		frames = append(frames, camera.Frame{Codec: codec, Data: data[:160], Duration: 20 * time.Millisecond})
		data = data[160:]
	}
	return frames
}

// makeOpus encodes a 440 Hz tone as Opus in 20 ms packets with ffmpeg and takes the
// packets out of the Ogg file, as an IP camera with an Opus microphone sends them.
func makeOpus(t *testing.T) []camera.Frame {
	t.Helper()
	ffmpeg := peers.Need(t, "ffmpeg")[0]
	out := filepath.Join(t.TempDir(), "tone.ogg")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2",
		"-c:a", "libopus", "-frame_duration", "20", "-b:a", "32k", "-f", "ogg", "-y", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	packets, err := oggPackets(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(packets) < 50 || !bytes.HasPrefix(packets[0], []byte("OpusHead")) {
		t.Fatalf("%d Ogg packets, the first %q", len(packets), packets[0][:min(8, len(packets[0]))])
	}
	var frames []camera.Frame
	for _, p := range packets[2:] { // after OpusHead and OpusTags
		frames = append(frames, camera.Frame{Codec: camera.Opus, Data: p, Duration: 20 * time.Millisecond})
	}
	return frames
}

// oggPackets joins the segments of an Ogg stream's pages into packets (RFC 3533).
func oggPackets(b []byte) ([][]byte, error) {
	var packets [][]byte
	var cur []byte
	for len(b) > 0 {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			return nil, errors.New("not an Ogg page")
		}
		n := int(b[26])
		if len(b) < 27+n {
			return nil, errors.New("short Ogg page")
		}
		lacing, body := b[27:27+n], b[27+n:]
		for _, l := range lacing {
			if len(body) < int(l) {
				return nil, errors.New("short Ogg segment")
			}
			cur = append(cur, body[:l]...)
			body = body[l:]
			if l < 255 {
				packets = append(packets, cur)
				cur = nil
			}
		}
		b = body
	}
	return packets, nil
}

// g711 names ffmpeg's encoder and raw format for each G.711 law.
var g711 = map[camera.Codec]string{camera.PCMU: "mulaw", camera.PCMA: "alaw"}

// clipCamera plays the clip in a loop at its rate, as a camera would, and honours
// keyframe requests by going back to the last IDR, as a camera that can be told to
// send one does.
type clipCamera struct {
	video, audio []camera.Frame
	keyframe     atomic.Bool
	fed          atomic.Int64
}

func (c *clipCamera) requestKeyframe() { c.keyframe.Store(true) }

func (c *clipCamera) run(ctx context.Context, t *testing.T, p *Publisher) {
	videoTick := time.NewTicker(time.Second / clipRate)
	defer videoTick.Stop()
	audioTick := time.NewTicker(20 * time.Millisecond)
	defer audioTick.Stop()
	v, a := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-videoTick.C:
			if c.keyframe.Swap(false) {
				for !c.video[v].Keyframe {
					v--
				}
			}
			if err := p.WriteVideo(c.video[v]); err != nil {
				t.Errorf("write video: %v", err)
				return
			}
			c.fed.Add(1)
			v = (v + 1) % len(c.video)
		case <-audioTick.C:
			if len(c.audio) == 0 {
				continue
			}
			if err := p.WriteAudio(c.audio[a]); err != nil {
				t.Errorf("write audio: %v", err)
				return
			}
			a = (a + 1) % len(c.audio)
		}
	}
}
