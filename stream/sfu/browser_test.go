package sfu

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// fakeCamera makes the y4m clip and wav tone Chromium uses as camera and microphone.
func fakeCamera(t *testing.T) (y4m, wav string) {
	t.Helper()
	y4m = filepath.Join(t.TempDir(), "camera.y4m")
	runFFmpeg(t, "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-t", "5", "-pix_fmt", "yuv420p", y4m)
	return y4m, fakeMicrophone(t)
}

// fakeMicrophone makes a 440 Hz wav tone for Chromium's fake microphone.
func fakeMicrophone(t *testing.T) string {
	t.Helper()
	wav := filepath.Join(t.TempDir(), "mic.wav")
	runFFmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "5", wav)
	return wav
}

func runFFmpeg(t *testing.T, args ...string) {
	t.Helper()
	ffmpeg := peers.Need(t, "ffmpeg")[0]
	out, err := exec.Command(ffmpeg, append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// TestChromiumPublishesChromiumViews puts Chromium on both ends: one publishes its
// fake camera over WHIP, another watches over WHEP and must decode frames at about
// the camera's 15 fps.
func TestChromiumPublishesChromiumViews(t *testing.T) {
	y4m, wav := fakeCamera(t)
	h := startHub(t, Config{})
	publisher := peers.Browser(t, peers.BrowserOptions{FakeVideo: y4m, FakeAudio: wav})
	h.openPage(t, publisher)
	loc := peers.Eval[string](t, publisher, `publish("/whip", "chromium-box")`)
	t.Logf("publishing at %s", loc)

	wait.For(t, 10*time.Second, "the hub to receive H.264 from Chromium", func() bool {
		st := h.sfu.Status()
		return len(st.Sessions) == 1 && len(st.Sessions[0].Tracks) == 2 && st.Sessions[0].Tracks[0].Packets > 10
	})

	viewer := peers.Browser(t, peers.BrowserOptions{})
	h.openPage(t, viewer)
	peers.Eval[string](t, viewer, `view("/whep/chromium-box")`)
	wait.For(t, 10*time.Second, "the viewer to decode a frame", func() bool {
		return peers.Eval[videoStats](t, viewer, `videoStats()`).FramesDecoded > 0
	})
	t.Logf("first frame %v ms after the viewer's offer", peers.Eval[float64](t, viewer, `firstFrameMs`))
	settle := time.Now()
	wait.For(t, 5*time.Second, "the viewer to settle after its first frame", func() bool { return time.Since(settle) > time.Second })
	before, sentBefore := peers.Eval[videoStats](t, viewer, `videoStats()`), peers.Eval[int](t, publisher, `publisherFramesSent()`)
	start := time.Now()
	wait.For(t, 10*time.Second, "two seconds of decoding", func() bool { return time.Since(start) > 2*time.Second })
	after, sentAfter := peers.Eval[videoStats](t, viewer, `videoStats()`), peers.Eval[int](t, publisher, `publisherFramesSent()`)
	decoded, sent := after.FramesDecoded-before.FramesDecoded, sentAfter-sentBefore
	elapsed := time.Since(start).Seconds()
	t.Logf("viewer decoded %.1f fps at width %d while Chromium sent %.1f fps (camera 15 fps)",
		float64(decoded)/elapsed, after.FrameWidth, float64(sent)/elapsed)
	if sent < int(10*elapsed) {
		t.Errorf("the publishing Chromium sent only %d frames in %.1f s from a 15 fps camera", sent, elapsed)
	}
	if decoded < sent*8/10 || decoded > sent+5 {
		t.Errorf("viewer decoded %d frames while the publisher sent %d", decoded, sent)
	}
	if after.FrameWidth != 320 {
		t.Errorf("viewer's frame width %d, want the camera's 320", after.FrameWidth)
	}
}
