package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"lifeline/internal/linkemu"
	"lifeline/stream/bench/whepviewer"
	"lifeline/stream/h264"
)

// percentile returns the p-th percentile (0–100) of ds, sorting it.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

// vitalsLatency is (a): a numeric written on the pty by the monitor simulator → the
// same numeric at the WHEP viewer, on loopback and across 5g-urban.
func (b *bench) vitalsLatency() {
	urban := linkemu.FiveGUrban()
	for _, prof := range []*linkemu.Profile{nil, &urban} {
		where := "loopback"
		oneWay := time.Duration(0)
		if prof != nil {
			where, oneWay = prof.Name+fmt.Sprintf(" (one way %v)", prof.Up.Delay), prof.Up.Delay
		}
		var mu sync.Mutex
		sent := map[string]time.Time{}
		var lat []time.Duration
		unmatched := 0
		s, err := startSystem(systemConfig{bin: b.bin, profile: prof, device: "AMB-BENCH-A", camera: "clip:", monitor: true,
			sent: func(key string, at time.Time) { mu.Lock(); sent[key] = at; mu.Unlock() }})
		if err != nil {
			b.failed("(a) vitals latency", where, err)
			continue
		}
		err = s.waitConnected(60 * time.Second)
		var v *whepviewer.Viewer
		if err == nil {
			v, err = s.watch(whepviewer.Hooks{Message: func(label string, m whepviewer.Message) {
				if label != "vitals" || m.Type != "numeric" {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if at, ok := sent[numericKey(m.MDC, m.MonitorTime)]; ok {
					lat = append(lat, m.At.Sub(at))
				} else {
					unmatched++
				}
			}})
		}
		if err != nil {
			b.failed("(a) vitals latency", where, err)
			s.close()
			continue
		}
		time.Sleep(b.dur) // recording: the viewer's hook collects meanwhile
		v.Close()
		s.close()
		mu.Lock()
		ds := slices.Clone(lat)
		mu.Unlock()
		if len(ds) == 0 {
			b.failed("(a) vitals latency", where, fmt.Errorf("no numeric matched (%d unmatched)", unmatched))
			continue
		}
		p50, p99 := percentile(ds, 50), percentile(ds, 99)
		goal := 60*time.Millisecond + oneWay
		b.add(row{what: "(a) vitals latency, pty write → WHEP viewer, p50 / p99", where: where,
			measured: ms(p50) + " / " + ms(p99), goal: "p99 < " + ms(goal), met: p99 < goal,
			note: fmt.Sprintf("%d numerics in %v, box also streaming the embedded clip", len(ds), b.dur)})
	}
}

// makeClip encodes size at 30 fps with ffmpeg (baseline profile, no B-frames, SPS/PPS
// before every IDR, a 1 s GOP) once, and returns its path.
func (b *bench) makeClip(size string, seconds int, bitrate string) (string, error) {
	path := filepath.Join(b.clips, fmt.Sprintf("%s-%ds.h264", size, seconds))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	cmd := exec.Command("ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=30", size),
		"-t", fmt.Sprint(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-bf", "0",
		"-g", "30", "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-x264-params", "repeat-headers=1", "-pix_fmt", "yuv420p", "-f", "h264", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ffmpeg: %v: %s", err, out)
	}
	return path, nil
}

// videoPath is (b): RTP H.264 sent by the bench into the box's rtp:// camera → the
// same picture's last packet at the WHEP viewer, all on loopback. It measures box +
// hub + viewer on one machine, so it bounds the box's own added delay from above.
func (b *bench) videoPath() {
	const what = "(b) video path delay, RTP in (rtp:// camera) → RTP out at the WHEP viewer, p50 / p99"
	clip, err := b.makeClip("1280x720", 20, "3M")
	if err != nil {
		b.failed(what, "loopback", err)
		return
	}
	data, err := os.ReadFile(clip)
	if err != nil {
		b.failed(what, "loopback", err)
		return
	}
	aus := h264.SplitAccessUnits(data, 3000)
	camAddr, err := freeLoopback()
	if err != nil {
		b.failed(what, "loopback", err)
		return
	}
	s, err := startSystem(systemConfig{bin: b.bin, device: "AMB-BENCH-B", camera: "rtp://" + camAddr})
	if err != nil {
		b.failed(what, "loopback", err)
		return
	}
	defer s.close()
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	recording := false
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- sendRTP(camAddr, aus, stop, func(key string, at time.Time) { mu.Lock(); sent[key] = at; mu.Unlock() })
	}()
	defer func() { close(stop); <-done }()
	if err := s.waitConnected(60 * time.Second); err != nil {
		b.failed(what, "loopback", err)
		return
	}
	v, err := s.watch(whepviewer.Hooks{VideoRTP: func(p *rtp.Packet, at time.Time) {
		if !p.Marker || len(p.Payload) < 16 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if t, ok := sent[string(p.Payload[len(p.Payload)-16:])]; ok && recording {
			lat = append(lat, at.Sub(t))
		}
	}})
	if err != nil {
		b.failed(what, "loopback", err)
		return
	}
	defer v.Close()
	if err := waitFor(20*time.Second, "frames at the viewer", func() bool { return len(v.Stats().Frames) > 30 }); err != nil {
		b.failed(what, "loopback", err)
		return
	}
	mu.Lock()
	recording = true
	mu.Unlock()
	time.Sleep(b.dur)
	mu.Lock()
	ds := slices.Clone(lat)
	mu.Unlock()
	if len(ds) == 0 {
		b.failed(what, "loopback", fmt.Errorf("no frame matched"))
		return
	}
	p50, p99 := percentile(ds, 50), percentile(ds, 99)
	b.add(row{what: what, where: "loopback", measured: ms(p50) + " / " + ms(p99), goal: "p99 < 5 ms", met: p99 < 5*time.Millisecond,
		note: fmt.Sprintf("%d frames of 720p30 at 3 Mbit/s; includes the hub and the viewer", len(ds))})
}

// sendRTP plays aus at 30 fps as RTP/H.264 (PT 96, 1200-byte payloads) to addr, in a
// loop until stop, calling sent with the last 16 bytes of each picture's last packet.
func sendRTP(addr string, aus []h264.AccessUnit, stop <-chan struct{}, sent func(string, time.Time)) error {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	pk := rtp.NewPacketizer(1200, 96, 0x5eed, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		au := aus[i%len(aus)]
		pkts := pk.Packetize(au.Data, 3000)
		for j, p := range pkts {
			raw, err := p.Marshal()
			if err != nil {
				return err
			}
			if j == len(pkts)-1 && len(p.Payload) >= 16 {
				sent(string(bytes.Clone(p.Payload[len(p.Payload)-16:])), time.Now())
			}
			conn.Write(raw)
		}
	}
}

// boxRSS is (e): the box's resident set while it streams a 1080p30 clip to a viewer
// and reads a 12-lead monitor.
func (b *bench) boxRSS() {
	const what = "(e) box RSS, 1080p30 clip + 12-lead HL7 monitor, peak"
	clip, err := b.makeClip("1920x1080", 10, "6M")
	if err != nil {
		b.failed(what, "loopback", err)
		return
	}
	s, err := startSystem(systemConfig{bin: b.bin, device: "AMB-BENCH-E", camera: "clip:" + clip + "?fps=30", monitor: true, twelveLead: true})
	if err != nil {
		b.failed(what, "loopback", err)
		return
	}
	defer s.close()
	if err := s.waitConnected(60 * time.Second); err != nil {
		b.failed(what, "loopback", err)
		return
	}
	v, err := s.watch(whepviewer.Hooks{})
	if err != nil {
		b.failed(what, "loopback", err)
		return
	}
	defer v.Close()
	var peak, last int64
	end := time.Now().Add(max(b.dur, 30*time.Second))
	for time.Now().Before(end) {
		if r, err := s.rss(); err == nil {
			last, peak = r, max(peak, r)
		}
		time.Sleep(250 * time.Millisecond)
	}
	st, pub := v.Stats(), s.publisher()
	b.add(row{what: what, where: "loopback", measured: fmt.Sprintf("%.1f MB (%.1f MB at the end)", float64(peak)/1e6, float64(last)/1e6),
		goal: "< 100 MB", met: peak > 0 && peak < 100e6,
		note: fmt.Sprintf("6 Mbit/s clip; box sent %d frames, dropped %d (%d over its video budget; estimate %.1f Mbit/s); viewer got %d frames, %d wave chunks",
			pub.FramesSent, pub.Dropped, pub.OverBudget, float64(pub.Target)/1e6, len(st.Frames), len(st.Waves))})
}
