package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"lifeline/internal/linkemu"
	"lifeline/internal/peers"
	"lifeline/internal/proclog"
	"lifeline/internal/wait"
	"lifeline/stream/bench/whepviewer"
)

// tunnelOutage is the tunnel of TestLiveStreamAcrossOutages. The `tunnel` profile's
// outage is 30 s; the test uses 10 s to stay short in `make test` (the box's ICE has
// failed well before then, so the path is the same one), and `make bench-stream` runs
// the full 30 s.
const tunnelOutage = 10 * time.Second

// nsSystem is a hub and a box run as the real binary, each in its own end of an
// emulated 5G link. Every address is the same in every run, since each link has
// namespaces of its own.
type nsSystem struct {
	link              *linkemu.Link
	dir               string
	hubConf, edgeConf string
	hubData, edgeData string
	hubHTTP, boxHTTP  *http.Client
	lastLive          string // the box's live-stream service when last read, for failures
}

const (
	nsHubServer = "10.202.0.1:8443"
	nsHubViewer = "10.202.0.1:8444"
	nsHubStream = "10.202.0.1:8445"
	nsHubStatus = "127.0.0.1:8781"
	nsBoxHTTP   = "127.0.0.1:8780"
)

func newNSSystem(t *testing.T, p linkemu.Profile, device, edgeExtra string) *nsSystem {
	t.Helper()
	peers.NeedRoot(t)
	peers.Need(t, "ip")
	link, err := linkemu.Start(context.Background(), p, linkemu.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Seed: 12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() }) // after the processes, which stop first
	if link.HubAddr().String()+":8443" != nsHubServer {
		t.Fatalf("the hub's address in the link is %s", link.HubAddr())
	}
	dir := t.TempDir()
	s := &nsSystem{link: link, dir: dir, hubData: filepath.Join(dir, "hub"), edgeData: filepath.Join(dir, "edge"),
		hubHTTP: link.HTTPClient(linkemu.Hub, 5*time.Second), boxHTTP: link.HTTPClient(linkemu.Box, 5*time.Second)}
	s.hubConf = writeFile(t, dir, "hub.toml", fmt.Sprintf("[server]\nlisten = %q\nnames = [\"10.202.0.1\"]\n[status]\nlisten = %q\n[viewer]\nlisten = %q\n[stream]\nlisten = %q\n",
		nsHubServer, nsHubStatus, nsHubViewer, nsHubStream))
	s.edgeConf = writeFile(t, dir, "edge.toml", fmt.Sprintf("[http]\nlisten = %q\n[hub]\nurl = \"https://%s\"\n[dicom]\nlisten = \"127.0.0.1:11112\"\n%s",
		nsBoxHTTP, nsHubServer, edgeExtra))
	code, out, stderr := lifeline(t, "hub", "enroll", "--data", s.hubData, "--config", s.hubConf, "--device", device)
	if code != 0 {
		t.Fatalf("hub enroll: status %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	enrolCode := lines[len(lines)-1]

	s.start(t, linkemu.Hub, "hub", "--config", s.hubConf, "--data", s.hubData)
	wait.For(t, 20*time.Second, "hub serving", func() bool { return s.hubReports("hub-server", "ready") })
	enrol := link.Command(linkemu.Box, binary, "edge", "enroll", "--config", s.edgeConf, "--data", s.edgeData, "--code", enrolCode)
	if out, err := enrol.CombinedOutput(); err != nil {
		t.Fatalf("edge enroll across the link: %v: %s", err, out)
	}
	s.start(t, linkemu.Box, "edge", "--config", s.edgeConf, "--data", s.edgeData)
	return s
}

// start runs a long-lived lifeline process in side's namespace until the test ends.
func (s *nsSystem) start(t *testing.T, side linkemu.Side, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: s.link.Command(side, binary, args...), stderr: &proclog.Buffer{}}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && side == linkemu.Box {
			t.Logf("the box's live stream when last read: %s", s.lastLive)
		}
		if t.Failed() {
			t.Logf("%s log, stream lines:\n%s", args[0], streamLines(p.stderr.String(), 40))
		}
	})
	t.Cleanup(func() { p.stop(t) })
	return p
}

func nsGetJSON(c *http.Client, url string, v any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return json.Unmarshal(body, v)
}

func (s *nsSystem) hubReports(words ...string) bool {
	var raw map[string]any
	if nsGetJSON(s.hubHTTP, "http://"+nsHubStatus+"/api/v1/status", &raw) != nil {
		return false
	}
	text := fmt.Sprint(raw)
	for _, w := range words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}

// publisher reads the box's WHIP publisher from its /api/v1/status.
type publisherStatus struct {
	State       string `json:"state"`
	ICERestarts int    `json:"ice_restarts"`
	NewSessions int    `json:"new_sessions"`
	LastError   string `json:"last_error"`
}

func (s *nsSystem) publisher() (publisherStatus, bool) {
	var st struct {
		Services []struct {
			Name      string `json:"name"`
			State     string `json:"state"`
			Detail    string `json:"detail"`
			LastError string `json:"last_error"`
			Details   struct {
				Publisher publisherStatus `json:"publisher"`
			} `json:"details"`
		} `json:"services"`
	}
	if nsGetJSON(s.boxHTTP, "http://"+nsBoxHTTP+"/api/v1/status", &st) != nil {
		return publisherStatus{}, false
	}
	for _, svc := range st.Services {
		if svc.Name == "live-stream" {
			s.lastLive = fmt.Sprintf("%s: %s %s %+v", svc.State, svc.Detail, svc.LastError, svc.Details.Publisher)
			return svc.Details.Publisher, svc.State == "ready"
		}
	}
	return publisherStatus{}, false
}

func (s *nsSystem) viewerToken(t *testing.T, device string) string {
	t.Helper()
	code, out, stderr := lifeline(t, "hub", "viewer-token", "--device", device, "--for", "link test", "--config", s.hubConf, "--data", s.hubData)
	if code != 0 {
		t.Fatalf("hub viewer-token: status %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// TestLiveStreamAcrossOutages is the tunnel and handover test through the
// binary: the box in one network namespace and the hub in another, joined by the
// emulated 5G link, a simulated HL7 monitor on a serial cable and the embedded clip as
// the camera, and a pion WHEP viewer with a viewer token on the hub's side. The link
// goes down (tunnel: tunnelOutage, same address; handover: 3 s, then a new box
// address); the box keeps its one session (ICE restart over PATCH, no new POST), the
// viewer gets a keyframe and frames again within seconds of the link returning, every
// reliable vitals message arrives in order without a hole, and the first wave chunk of
// each waveform after the outage is marked as a gap.
func TestLiveStreamAcrossOutages(t *testing.T) {
	// pictureWithin bounds the time to the first keyframe after the link returns. The
	// product's goal is 2 s (make bench-stream measures it). After a handover the box
	// first spends one restart on a connection the address change killed, so the test
	// allows more there; what it must prove is that the session survives.
	for _, c := range []struct {
		name          string
		profile       linkemu.Profile
		outage        time.Duration
		handover      bool
		pictureWithin time.Duration
	}{
		{"tunnel", linkemu.Tunnel(), tunnelOutage, false, 5 * time.Second},
		{"handover", linkemu.Handover(), 3 * time.Second, true, 10 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.profile.Outages = linkemu.Outages{} // the test takes the link down itself, once all is flowing
			liveStreamAcrossOutage(t, c.profile, c.outage, c.handover, c.pictureWithin)
		})
	}
}

func liveStreamAcrossOutage(t *testing.T, p linkemu.Profile, outage time.Duration, handover bool, pictureWithin time.Duration) {
	cable := peers.PlugCable(t)
	start(t, "sim", "monitor", "--protocol", "hl7", "--port", cable.DeviceEnd)
	s := newNSSystem(t, p, "AMB-LINK",
		fmt.Sprintf("[[camera]]\nurl = \"clip:\"\n[[monitor]]\nport = %q\nprotocol = \"hl7\"\n", cable.BoxEnd))

	wait.For(t, 60*time.Second, "the box's live stream connected to the hub across the link", func() bool {
		pub, ready := s.publisher()
		return ready && pub.State == "connected"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := whepviewer.Watch(ctx, "https://"+nsHubViewer+"/whep/AMB-LINK", s.viewerToken(t, "AMB-LINK"),
		whepviewer.Config{Socket: s.link.InHub, UDPAddr: "10.202.0.1:0"}, whepviewer.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	wait.For(t, 20*time.Second, "video frames, numerics and waves at the viewer", func() bool {
		st := v.Stats()
		return len(st.Keyframes) > 0 && len(st.Frames) > 30 && len(st.Vitals) > 0 && len(st.Waves) > 0
	})

	down := time.Now()
	if handover {
		s.link.Handover(outage)
	} else {
		s.link.Outage(outage)
	}
	back := down.Add(outage)
	wait.For(t, outage+5*time.Second, "the box to notice the outage", func() bool {
		pub, _ := s.publisher()
		return pub.State == "restarting" || pub.State == "waiting"
	})
	wait.For(t, 20*time.Second, "the box's live stream connected again", func() bool {
		pub, _ := s.publisher()
		return pub.State == "connected" && time.Now().After(back)
	})
	pub, _ := s.publisher()
	if pub.NewSessions != 1 || pub.ICERestarts < 1 {
		t.Errorf("publisher after the outage: %d sessions, %d ICE restarts; want one session restarted over PATCH (%+v)", pub.NewSessions, pub.ICERestarts, pub)
	}

	// Picture back: a keyframe, then frames flowing, a few seconds after the link is.
	wait.For(t, 20*time.Second, "a keyframe and 30 frames at the viewer after the outage", func() bool {
		st := v.Stats()
		return countAfter(st.Keyframes, back) > 0 && countAfter(st.Frames, back) >= 30
	})
	st := v.Stats()
	firstKey := st.Keyframes[len(st.Keyframes)-countAfter(st.Keyframes, back)]
	t.Logf("picture back %v after the link (keyframe at the viewer)", firstKey.Sub(back).Round(time.Millisecond))
	if d := firstKey.Sub(back); d > pictureWithin {
		t.Errorf("first keyframe %v after the link returned, want within %v", d, pictureWithin)
	}

	// Numerics the monitor sent during the outage arrive by replay: wait for the
	// reliable channel to carry messages from after the link returned, then check the
	// sequence has no hole.
	wait.For(t, 20*time.Second, "reliable vitals read after the outage at the viewer", func() bool {
		st := v.Stats()
		return len(st.Vitals) > 0 && st.Vitals[len(st.Vitals)-1].BoxTime.After(back.Add(2*time.Second))
	})
	st = v.Stats()
	checkReliable(t, st.Vitals, down, back)
	checkWaveGap(t, st.Waves, down)
}

// checkReliable checks the viewer saw every reliable seq from its first on, in order
// and once, and that messages read during the outage were among them.
func checkReliable(t *testing.T, msgs []whepviewer.Message, down, back time.Time) {
	t.Helper()
	during := 0
	for i, m := range msgs {
		if i > 0 && m.Seq != msgs[i-1].Seq+1 {
			t.Errorf("reliable vitals at the viewer: seq %d after %d", m.Seq, msgs[i-1].Seq)
		}
		if m.BoxTime.After(down) && m.BoxTime.Before(back) {
			during++
		}
	}
	t.Logf("reliable vitals at the viewer: seq %d..%d, %d read by the box during the outage", msgs[0].Seq, msgs[len(msgs)-1].Seq, during)
	if during == 0 {
		t.Error("no reliable vitals message the box read during the outage reached the viewer")
	}
}

// checkWaveGap checks that the outage shows in every waveform as a gap a reader finds
// by the rules of stream/VITALS.md: each waveform has a hole in its samples after the
// outage began, and every hole is either flagged (gap: true, the losses the box knows
// of) or has a wave seq missing before it (a chunk lost in transit, which the box
// cannot know of). Chunks the box sent before it could know the link was down arrive
// late, but they are real samples, placed by their start: they are not the gap.
func checkWaveGap(t *testing.T, waves []whepviewer.Message, down time.Time) {
	t.Helper()
	type chunk struct {
		seq        uint64
		gap        bool
		start, end time.Time
	}
	bySignal := map[string][]chunk{}
	received := map[uint64]bool{}
	for _, w := range waves {
		received[w.Seq] = true
		var body struct {
			Start   time.Time  `json:"start"`
			Rate    float64    `json:"rate"`
			Samples []*float64 `json:"samples"`
		}
		if err := json.Unmarshal(w.Raw, &body); err != nil || body.Rate <= 0 {
			t.Fatalf("wave message %s: %v", w.Raw, err)
		}
		end := body.Start.Add(time.Duration(float64(len(body.Samples)) / body.Rate * float64(time.Second)))
		bySignal[w.MDC] = append(bySignal[w.MDC], chunk{w.Seq, w.Gap, body.Start, end})
	}
	if len(bySignal) == 0 {
		t.Fatal("no wave chunks at the viewer")
	}
	for mdc, chunks := range bySignal {
		sort.Slice(chunks, func(i, j int) bool { return chunks[i].seq < chunks[j].seq })
		outageShows := false
		for i := 1; i < len(chunks); i++ {
			if chunks[i].start.Sub(chunks[i-1].end) <= 50*time.Millisecond {
				continue
			}
			lostInTransit := false
			for seq := chunks[i-1].seq + 1; seq < chunks[i].seq; seq++ {
				lostInTransit = lostInTransit || !received[seq]
			}
			if !chunks[i].gap && !lostInTransit {
				t.Errorf("%s: chunk seq %d starts %v after the end of seq %d, is not marked as a gap, and no chunk between them is missing",
					mdc, chunks[i].seq, chunks[i].start.Sub(chunks[i-1].end).Round(time.Millisecond), chunks[i-1].seq)
			}
			if chunks[i].end.After(down) {
				outageShows = true
			}
		}
		if !outageShows {
			t.Errorf("%s: the outage left no gap in the waveform", mdc)
		}
	}
}

func countAfter(ts []time.Time, from time.Time) int {
	n := 0
	for _, x := range ts {
		if x.After(from) {
			n++
		}
	}
	return n
}

// streamLines returns the last n lines of a process log that concern the live stream.
func streamLines(log string, n int) string {
	var l []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "whip") || strings.Contains(line, "sfu") || strings.Contains(line, "live-stream") {
			l = append(l, line)
		}
	}
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestLiveStreamOverLossyLink is the loss test: 3 % and 5 % random loss in
// both directions with ±5 ms jitter on the 5G link between the box's and the hub's
// namespaces. The picture still plays at the viewer on the hub's side: frames keep
// arriving at nearly the clip's 30 fps, and NACK repairs nearly all the loss, so the
// viewer misses under 1 % of the video packets.
func TestLiveStreamOverLossyLink(t *testing.T) {
	for _, loss := range []float64{0.03, 0.05} {
		t.Run(fmt.Sprintf("%.0f%%", loss*100), func(t *testing.T) {
			p := linkemu.FiveGUrban().WithLoss(loss)
			p.Up.Jitter, p.Down.Jitter = 5*time.Millisecond, 5*time.Millisecond
			s := newNSSystem(t, p, "AMB-LOSSY", "[[camera]]\nurl = \"clip:\"\n")
			wait.For(t, 60*time.Second, "the box's live stream connected to the hub across the link", func() bool {
				pub, ready := s.publisher()
				return ready && pub.State == "connected"
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			v, err := whepviewer.Watch(ctx, "https://"+nsHubViewer+"/whep/AMB-LOSSY", s.viewerToken(t, "AMB-LOSSY"),
				whepviewer.Config{Socket: s.link.InHub, UDPAddr: "10.202.0.1:0"}, whepviewer.Hooks{})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			wait.For(t, 20*time.Second, "a keyframe and frames at the viewer", func() bool {
				st := v.Stats()
				return len(st.Keyframes) > 0 && len(st.Frames) > 30
			})
			before, from := v.Stats(), time.Now()
			wait.For(t, 15*time.Second, "ten seconds of video at the viewer", func() bool { return time.Since(from) >= 10*time.Second })
			after := v.Stats()
			fps := float64(len(after.Frames)-len(before.Frames)) / time.Since(from).Seconds()
			// The newest 100 packets (over a second) may still be repaired.
			lost, span := v.MissingVideo(100)
			missed := float64(lost) / float64(max(span, 1))
			up := s.link.Stats().Up
			t.Logf("%.0f%% loss: the link dropped %d of %d uplink packets; %.1f frames/s at the viewer, %d of %d video packets never arrived",
				loss*100, up.Dropped(), up.Packets, fps, lost, span)
			if fps < 25 {
				t.Errorf("%.1f frames/s at the viewer, want the clip's 30 nearly", fps)
			}
			if missed > 0.01 {
				t.Errorf("%.2f%% of the video packets never reached the viewer: NACK repairs too little", missed*100)
			}
		})
	}
}
