package sfu

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestDataChannelsRelayToChromium checks the vitals path end to end with a real
// browser, from a box that also sends G.711 audio as a camera's microphone would
// (Chromium must decode it): what the box sends on vitals and vitals-wave reaches a Chromium viewer
// byte for byte (text stays text), the hub's hook sees every message and its reply
// reaches the box, and a message the viewer sends on control reaches the box through
// the hub's control hook.
func TestDataChannelsRelayToChromium(t *testing.T) {
	var sfu *SFU
	var mu sync.Mutex
	var stored []string
	h := startHub(t, Config{
		OnPublisherMessage: func(device, label string, data []byte) []byte {
			mu.Lock()
			defer mu.Unlock()
			stored = append(stored, label+":"+hex.EncodeToString(data))
			if label == "vitals" {
				return fmt.Appendf(nil, "ack %d", len(stored))
			}
			return nil
		},
		OnViewerControl: func(v ViewerInfo, data []byte) {
			if err := sfu.SendToPublisher(v.Device, ControlLabel, data); err != nil {
				t.Errorf("forward control to box: %v", err)
			}
		},
	})
	sfu = h.sfu
	tab := peers.Browser(t, peers.BrowserOptions{})
	h.openPage(t, tab)
	box := publishBoxWithAudio(t, h, "box-data", webrtc.MimeTypePCMU)
	wait.For(t, 10*time.Second, "the box's data channels to open", box.channelsOpen)
	box.speak()
	peers.Eval[string](t, tab, `view("/whep/box-data")`)
	wait.For(t, 10*time.Second, "the viewer's data channels to open", func() bool { return peers.Eval[bool](t, tab, `channelsOpen()`) })

	want := sendVitals(t, box)
	got := vitalsAtViewer(t, tab, want)
	mu.Lock()
	if min := len(want["vitals"]) + len(got["vitals-wave"]); len(stored) < min {
		t.Errorf("the hub's hook saw %d messages, want at least the %d the viewer got", len(stored), min)
	}
	mu.Unlock()
	wait.For(t, 5*time.Second, "the hub's acks at the box", func() bool { return len(box.messages("vitals")) == len(want["vitals"]) })
	if got := string(box.messages("vitals")[0]); !strings.HasPrefix(got, "ack ") {
		t.Errorf("box got %q on vitals, want the hub's ack", got)
	}

	wait.For(t, 10*time.Second, "the box's G.711 audio decoded at the viewer", func() bool {
		a := peers.Eval[audioStats](t, tab, `audioStats()`)
		return a.Codec == "audio/PCMU" && a.PacketsReceived > 50 && a.TotalSamplesReceived > 8000
	})

	peers.Eval[bool](t, tab, `channels.control.send(new Uint8Array([0, 1, 2, 250, 255])), true`)
	wait.For(t, 5*time.Second, "the viewer's control message at the box", func() bool { return len(box.messages(ControlLabel)) == 1 })
	if got := box.messages(ControlLabel)[0]; hex.EncodeToString(got) != "000102faff" {
		t.Errorf("box got control %x, want 000102faff", got)
	}
}

// sendVitals sends 40 random binary messages on each of vitals and vitals-wave, as
// a monitor does (one per label every 5 ms), and one text message on vitals. It
// returns what was sent per label, as the harness page records it: hex, or "text:".
func sendVitals(t *testing.T, box *testBox) map[string][]string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var want = map[string][]string{}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := range 40 {
		<-tick.C
		for _, label := range []string{"vitals", "vitals-wave"} {
			msg := make([]byte, 1+rng.IntN(1200))
			for j := range msg {
				msg[j] = byte(rng.UintN(256))
			}
			if err := box.channels[label].Send(msg); err != nil {
				t.Fatal(err)
			}
			want[label] = append(want[label], hex.EncodeToString(msg))
		}
		if i == 20 {
			if err := box.channels["vitals"].SendText(`{"seq":20,"code":"MDC_ECG_HEART_RATE"}`); err != nil {
				t.Fatal(err)
			}
			want["vitals"] = append(want["vitals"], `text:{"seq":20,"code":"MDC_ECG_HEART_RATE"}`)
		}
	}
	return want
}

// vitalsAtViewer waits for the box's messages at the viewer and checks them: every
// vitals message in order, byte for byte; vitals-wave messages byte for byte, any
// order, a rare loss allowed (it is sent without retransmission: a late sample is
// useless). It returns what the viewer received.
func vitalsAtViewer(t *testing.T, tab context.Context, want map[string][]string) map[string][]string {
	t.Helper()
	wait.For(t, 10*time.Second, "the viewer to receive every message", func() bool {
		got := peers.Eval[map[string][]string](t, tab, `received`)
		return len(got["vitals"]) == len(want["vitals"]) && len(got["vitals-wave"]) >= len(want["vitals-wave"])-2
	})
	got := peers.Eval[map[string][]string](t, tab, `received`)
	if !slices.Equal(got["vitals"], want["vitals"]) {
		t.Errorf("vitals at the viewer differ from what the box sent, or came out of order")
	}
	for _, m := range got["vitals-wave"] {
		if !slices.Contains(want["vitals-wave"], m) {
			t.Errorf("the viewer got a vitals-wave message the box never sent: %.40s…", m)
		}
	}
	return got
}
