package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"lifeline/internal/service"
	"lifeline/internal/trust"
	"lifeline/stream/bench/whepviewer"
	"lifeline/stream/camera"
	"lifeline/stream/h264"
	"lifeline/stream/whip"
)

// Fan-out sizes of the issue.
const (
	fanPublishers = 20
	fanViewers    = 3
)

// fanout is (c): the hub process on loopback; 20 boxes, each the product's WHIP
// publisher (stream/whip) in the bench process with an enrolled identity of its own,
// fed a 2 Mbit/s 720p30 clip; then 3 pion WHEP viewers each. The bench process shares
// the machine's two cores with the hub, so the hub's CPU is read from /proc for its
// process alone. Loss is the viewers' video sequence numbers never received
// (retransmissions counted as received), over each viewer's whole session. The viewers one core serves is estimated
// from the hub's CPU with publishers alone and with the viewers added.
func (b *bench) fanout() {
	const what = "(c) hub fan-out, 20 publishers × 3 viewers at 2 Mbit/s"
	if err := b.runFanout(what); err != nil {
		b.failed(what, "loopback", err)
	}
}

func (b *bench) runFanout(what string) error {
	clip, err := b.makeClip("1280x720", 10, "2M")
	if err != nil {
		return err
	}
	data, err := os.ReadFile(clip)
	if err != nil {
		return err
	}
	aus := h264.SplitAccessUnits(data, 3000)
	s, err := startSystem(systemConfig{bin: b.bin, device: "FAN-00", noBox: true})
	if err != nil {
		return err
	}
	defer s.close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	pubs := make([]*whip.Publisher, fanPublishers)
	for i := range pubs {
		device := fmt.Sprintf("FAN-%02d", i)
		id, err := s.enrolIdentity(device)
		if err != nil {
			return err
		}
		pubs[i], err = whip.New(whip.Config{Endpoint: "https://" + s.hubServer + "/whip", TLS: id.ClientTLS(), Loopback: true,
			Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		wg.Add(2)
		go func() { defer wg.Done(); pubs[i].Run(ctx, &service.Health{}) }()
		go func() { defer wg.Done(); feed(ctx, pubs[i], aus, i) }()
	}
	if err := waitFor(60*time.Second, "every publisher connected", func() bool {
		for _, p := range pubs {
			if p.Status().State != whip.StateConnected {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	time.Sleep(5 * time.Second) // the congestion controllers settle
	cpuPubs, err := s.hubCPU(b.dur)
	if err != nil {
		return err
	}
	var viewers []*whepviewer.Viewer
	defer func() {
		for _, v := range viewers {
			v.Close()
		}
	}()
	for i := range pubs {
		s.device = fmt.Sprintf("FAN-%02d", i)
		for range fanViewers {
			v, err := s.watch(whepviewer.Hooks{})
			if err != nil {
				return err
			}
			viewers = append(viewers, v)
		}
	}
	if err := waitFor(30*time.Second, "video at every viewer", func() bool {
		for _, v := range viewers {
			if len(v.Stats().Frames) < 30 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	before := make([]whepviewer.Stats, len(viewers))
	for i, v := range viewers {
		before[i] = v.Stats()
	}
	cpuAll, err := s.hubCPU(b.dur)
	if err != nil {
		return err
	}
	var expected, missing, bytes uint64
	for i, v := range viewers {
		bytes += v.Stats().VideoBytes - before[i].VideoBytes
		m, span := v.MissingVideo(100) // the newest 100 may still be repaired
		missing += m
		expected += span
	}
	loss := 0.0
	if expected > 0 {
		loss = float64(missing) / float64(expected)
	}
	perViewer := (cpuAll - cpuPubs) / float64(len(viewers))
	perPub := cpuPubs / fanPublishers
	perCore := "–"
	if perViewer > 0 {
		perCore = fmt.Sprintf("≈%d (one box: (1 − %.3f) / %.4f cores)", int((1-perPub)/perViewer), perPub, perViewer)
	}
	var sent, dropped uint64
	for _, p := range pubs {
		st := p.Status()
		sent += st.FramesSent
		dropped += st.FramesDropped
	}
	b.add(row{what: what + ": video loss at the viewers", where: "loopback", measured: fmt.Sprintf("%.3f %%", loss*100),
		goal: "< 0.5 %", met: expected > 0 && loss < 0.005,
		note: fmt.Sprintf("%d viewers received %.1f Mbit/s each on average; publishers sent %d frames, dropped %d before the wire (budget or no session)",
			len(viewers), float64(bytes)*8/b.dur.Seconds()/float64(len(viewers))/1e6, sent, dropped)})
	b.add(row{what: what + ": hub CPU", where: "loopback", measured: fmt.Sprintf("%.2f cores (%.2f with the publishers alone)", cpuAll, cpuPubs),
		goal: "reported", met: true, note: "publishers and viewers run in the bench process on the same 2 cores"})
	b.add(row{what: "(c) viewers one core serves", where: "loopback", measured: perCore, goal: "reported", met: perViewer > 0,
		note: "from the hub's CPU with and without the 60 viewers, assuming each viewer costs the same"})
	return nil
}

// feed writes the clip to p at 30 fps, starting at a different picture for each box.
func feed(ctx context.Context, p *whip.Publisher, aus []h264.AccessUnit, offset int) {
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for i := offset * 7; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		au := aus[i%len(aus)]
		_ = p.WriteVideo(camera.Frame{Codec: camera.H264, Data: au.Data, Duration: time.Second / 30, Keyframe: au.IDR, Received: time.Now()})
	}
}

// enrolIdentity enrols device with the running hub, as `lifeline edge enroll` does,
// and returns its identity.
func (s *system) enrolIdentity(device string) (*trust.Identity, error) {
	out, err := exec.Command(s.bin, "hub", "enroll", "--data", s.hubData, "--config", s.hubConf, "--device", device).Output()
	if err != nil {
		return nil, fmt.Errorf("hub enroll %s: %w", device, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	data := filepath.Join(s.dir, "boxes", device)
	if out, err := exec.Command(s.bin, "edge", "enroll", "--config", s.edgeConf, "--data", data, "--code", lines[len(lines)-1]).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("edge enroll %s: %v: %s", device, err, out)
	}
	return trust.LoadIdentity(filepath.Join(data, "identity"))
}

// hubCPU returns the cores the hub process used on average over d.
func (s *system) hubCPU(d time.Duration) (float64, error) {
	t0, err := cpuTicks(s.hub.Process.Pid)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	time.Sleep(d)
	t1, err := cpuTicks(s.hub.Process.Pid)
	if err != nil {
		return 0, err
	}
	return float64(t1-t0) / 100 / time.Since(start).Seconds(), nil // USER_HZ is 100 on Linux
}

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return 0, err
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return 0, err
	}
	return ut + st, nil
}
