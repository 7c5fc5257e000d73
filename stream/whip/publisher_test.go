package whip

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/internal/service"
	"lifeline/internal/wait"
	"lifeline/stream/camera"
)

// box is a publisher under test with the three data channels the vitals package
// attaches, and what arrived on control.
type box struct {
	p      *Publisher
	cam    *clipCamera
	mu     sync.Mutex
	send   map[string]func([]byte) error
	opened map[string]int
	closed map[string]int
	fromED []string
	stop   func() error // ends Run and returns what it returned
	t      *testing.T
}

func startBox(t *testing.T, endpoint, token string, tune func(*Config)) *box {
	t.Helper()
	b := &box{send: map[string]func([]byte) error{}, opened: map[string]int{}, closed: map[string]int{}, t: t}
	b.cam = &clipCamera{video: makeClip(t)}
	zero := uint16(0)
	channel := func(label string, ordered bool, maxRetransmits *uint16) DataChannel {
		return DataChannel{
			Label: label, Ordered: ordered, MaxRetransmits: maxRetransmits,
			OnOpen: func(send func([]byte) error) {
				b.mu.Lock()
				b.send[label] = send
				b.opened[label]++
				b.mu.Unlock()
			},
			OnMessage: func(msg []byte) {
				b.mu.Lock()
				b.fromED = append(b.fromED, label+":"+string(msg))
				b.mu.Unlock()
			},
			OnClose: func() {
				b.mu.Lock()
				b.closed[label]++
				b.mu.Unlock()
			},
		}
	}
	cfg := Config{
		Endpoint:    endpoint,
		BearerToken: token,
		Audio:       camera.PCMU,
		DataChannels: []DataChannel{
			channel("vitals-wave", false, &zero),
			channel("vitals", true, nil),
			channel("control", true, nil),
		},
		OnKeyframeRequest: b.cam.requestKeyframe,
		Loopback:          true,
		Interfaces:        []string{"lo"},
		RetryInitial:      100 * time.Millisecond,
	}
	if tune != nil {
		tune(&cfg)
	}
	switch cfg.Audio {
	case camera.PCMU, camera.PCMA:
		b.cam.audio = makeTone(t, cfg.Audio)
	case camera.Opus:
		b.cam.audio = makeOpus(t)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.p = p
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	var runErr error
	go func() { defer wg.Done(); runErr = p.Run(ctx, &service.Health{}) }()
	go func() { defer wg.Done(); b.cam.run(ctx, t, p) }()
	b.stop = sync.OnceValue(func() error { cancel(); wg.Wait(); return runErr })
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("publisher: %+v", p.Status())
		}
	})
	return b
}

// sendOn sends msg on a data channel once it is open; false if it is not.
func (b *box) sendOn(label, msg string) bool {
	b.mu.Lock()
	send := b.send[label]
	b.mu.Unlock()
	if send == nil {
		return false
	}
	if err := send([]byte(msg)); err != nil {
		b.t.Logf("send on %s: %v", label, err)
		return false
	}
	return true
}

func (b *box) heardFromED(msg string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.fromED {
		if m == msg {
			return true
		}
	}
	return false
}

// waitDecoding waits until Chromium decoded n more frames of session id than it had.
func waitDecoding(t *testing.T, e *chromiumEndpoint, id string, n int, timeout time.Duration, what string) {
	t.Helper()
	from := e.framesDecoded(id)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("frames decoded by Chromium: %d", e.framesDecoded(id))
		}
	})
	wait.For(t, timeout, what, func() bool { return e.framesDecoded(id) >= from+n })
}

// waitMessage sends msg on label until the page has it: vitals-wave may lose it.
func waitMessage(t *testing.T, e *chromiumEndpoint, b *box, id, label, msg string) {
	t.Helper()
	wait.For(t, 10*time.Second, msg+" on "+label, func() bool {
		if r := e.received(id); r != nil {
			for _, m := range r.Messages[label] {
				if m == msg {
					return true
				}
			}
		}
		b.sendOn(label, msg)
		return false
	})
}

// TestPublishToChromium publishes the clip, a G.711 tone and the three data channels
// to a WHIP endpoint whose media stack is Chromium: Chromium decodes the video at the
// clip's rate, plays the audio, receives every channel and talks back on control.
func TestPublishToChromium(t *testing.T) {
	e := newChromiumEndpoint(t, nil, "secret-token")
	var budgets atomic.Int64 // the last budget the camera side was told, +1 so 0 means never
	b := startBox(t, e.url(), "secret-token", func(c *Config) {
		c.OnVideoBudget = func(bps int) { budgets.Store(int64(bps) + 1) }
	})

	wait.For(t, 20*time.Second, "the session to connect", func() bool { return b.p.Status().State == StateConnected })
	waitDecoding(t, e, "1", 30, 15*time.Second, "Chromium to decode the first second")

	// Decoding keeps pace with the feed: 60 frames take about 2 s at 30 fps.
	start, from := time.Now(), e.framesDecoded("1")
	waitDecoding(t, e, "1", 60, 10*time.Second, "60 more decoded frames")
	rate := float64(e.framesDecoded("1")-from) / time.Since(start).Seconds()
	if rate < 0.8*clipRate || rate > 1.3*clipRate {
		t.Errorf("Chromium decoded %.1f frames/s, the camera sends %d", rate, clipRate)
	}
	r := e.received("1")
	if r.Width != 640 {
		t.Errorf("decoded width %d, want the clip's 640", r.Width)
	}
	if r.AudioPackets == 0 || r.AudioCodec != "audio/PCMU" {
		t.Errorf("Chromium received %d audio packets in %q, want G.711 µ-law as the camera sent it", r.AudioPackets, r.AudioCodec)
	}

	for _, label := range []string{"vitals-wave", "vitals", "control"} {
		waitMessage(t, e, b, "1", label, "hello on "+label)
	}
	wait.For(t, 10*time.Second, "the ED's message on control", func() bool {
		e.sendControl("1", "patient ready?")
		return b.heardFromED("control:patient ready?")
	})

	e.mu.Lock()
	answer := e.answers[0]
	e.mu.Unlock()
	if !strings.Contains(answer, "profile-level-id=42e01f") || !strings.Contains(answer, "packetization-mode=1") {
		t.Errorf("Chromium's answer does not take constrained baseline in packetization mode 1:\n%s", answer)
	}
	st := b.p.Status()
	t.Logf("status: %+v", st)
	if st.Session != e.srv.URL+"/whip/1" || st.SelectedPair == "" || st.NewSessions != 1 || st.ICERestarts != 0 {
		t.Errorf("status %+v", st)
	}
	if st.TargetBitrate <= 0 || st.VideoBudget != st.TargetBitrate-80_000-200_000 && st.VideoBudget != 0 {
		t.Errorf("estimate %d, video budget %d", st.TargetBitrate, st.VideoBudget)
	}
	// The estimate moves once feedback arrives, and the camera side hears of it.
	wait.For(t, 10*time.Second, "the camera side to be told the video budget", func() bool {
		return budgets.Load()-1 == int64(b.p.VideoBudget())
	})
	if st.FramesSent < 90 || st.KeyframeRequests < 1 {
		t.Errorf("frames sent %d, keyframe requests %d", st.FramesSent, st.KeyframeRequests)
	}
	b.p.mu.Lock()
	servers := b.p.linkServers
	b.p.mu.Unlock()
	if len(servers) != 1 || servers[0].URLs[0] != e.stun.url() {
		t.Errorf("ICE servers from the Link header: %+v", servers)
	}
}

// TestStopDeletesSession checks that the end of Run's context DELETEs the session,
// closes the data channels and leaves the publisher stopped.
func TestStopDeletesSession(t *testing.T) {
	e := newChromiumEndpoint(t, nil, "")
	b := startBox(t, e.url(), "", nil)
	waitDecoding(t, e, "1", 15, 20*time.Second, "Chromium to decode")
	if err := b.stop(); err != nil {
		t.Errorf("Run returned %v after its context ended", err)
	}
	e.mu.Lock()
	deletes := e.deletes
	e.mu.Unlock()
	if len(deletes) != 1 || deletes[0] != "1" {
		t.Errorf("deleted sessions %v, want [1]", deletes)
	}
	if st := b.p.Status(); st.State != StateStopped || st.Session != "" {
		t.Errorf("status after Run: %+v", st)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, label := range []string{"vitals-wave", "vitals", "control"} {
		if b.opened[label] != 1 || b.closed[label] != 1 {
			t.Errorf("%s opened %d times, closed %d times", label, b.opened[label], b.closed[label])
		}
	}
}

// TestAudioToChromium passes a camera's Opus or A-law audio through as it is:
// Chromium receives it in that codec beside the picture. (µ-law is in
// TestPublishToChromium.)
func TestAudioToChromium(t *testing.T) {
	for codec, mime := range map[camera.Codec]string{camera.Opus: "audio/opus", camera.PCMA: "audio/PCMA"} {
		t.Run(string(codec), func(t *testing.T) {
			e := newChromiumEndpoint(t, nil, "")
			startBox(t, e.url(), "", func(c *Config) { c.Audio = codec })
			waitDecoding(t, e, "1", 30, 20*time.Second, "Chromium to decode")
			wait.For(t, 10*time.Second, string(codec)+" packets at Chromium", func() bool {
				r := e.received("1")
				return r.AudioPackets >= 50 && r.AudioCodec == mime
			})
		})
	}
}

// TestOverBudgetVideoIsHeldBack runs the clip through a link whose estimate leaves
// video far less than the clip needs: the gate holds video back (counted, and the
// camera side asked for keyframes to restart from), Chromium still gets whole,
// decodable pictures now and then, and the vitals pass as if video were not there.
func TestOverBudgetVideoIsHeldBack(t *testing.T) {
	e := newChromiumEndpoint(t, nil, "")
	b := startBox(t, e.url(), "", func(c *Config) {
		// The estimate is pinned at 300 kbit/s; with the default reserves that
		// leaves video 20 kbit/s, raised to this floor.
		c.InitialBitrate, c.MinBitrate, c.MaxBitrate = 300_000, 300_000, 300_000
		c.VideoFloor = 50_000
	})
	wait.For(t, 20*time.Second, "the session to connect", func() bool { return b.p.Status().State == StateConnected })
	waitDecoding(t, e, "1", 2, 20*time.Second, "Chromium to decode pictures let through")
	wait.For(t, 10*time.Second, "frames held back over budget", func() bool { return b.p.Status().FramesOverBudget > 30 })
	waitMessage(t, e, b, "1", "vitals", "numerics while video is held back")
	st := b.p.Status()
	t.Logf("status %+v", st)
	if st.VideoBudget != 20_000 || st.KeyframeRequests < 2 {
		t.Errorf("video budget %d, keyframe requests %d", st.VideoBudget, st.KeyframeRequests)
	}
}
