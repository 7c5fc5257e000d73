package sfu

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// TestLateViewerSeesPictureWithinTwoSeconds has a box send real H.264 with a 4 s GOP
// (a keyframe every 120 frames at 30 fps) that never answers keyframe requests, as
// many IP cameras behind a box do. A Chromium viewer joins well into the GOP and must
// decode its first frame within 2 s, and before the box's next keyframe was even
// sent: only the hub's cached GOP can have started its decoder. It must then keep
// decoding at the clip's rate, not replay the GOP in slow motion.
func TestLateViewerSeesPictureWithinTwoSeconds(t *testing.T) {
	const fps, gop = 30, 120
	aus := h264Clip(t, 8, fps, gop)
	h := startHub(t, Config{})
	tab := peers.Browser(t, peers.BrowserOptions{})
	h.openPage(t, tab)
	box := publishBox(t, h, "box-late")
	wait.For(t, 10*time.Second, "the box's connection", func() bool {
		return box.pc.ConnectionState().String() == "connected"
	})
	box.play(aus, fps)
	// Join 40 frames (1.3 s) into the first GOP: without the cache the viewer would
	// wait 2.7 s for the next keyframe.
	wait.For(t, 10*time.Second, "the box to be 40 frames into its GOP", func() bool { return box.framesSent.Load() >= 40 })
	joinedAt := box.framesSent.Load()
	peers.Eval[string](t, tab, `view("/whep/box-late")`)
	wait.For(t, 5*time.Second, "the late viewer's first decoded frame", func() bool {
		return peers.Eval[*float64](t, tab, `firstFrameMs`) != nil
	})
	decodedAt := box.framesSent.Load()
	first := *peers.Eval[*float64](t, tab, `firstFrameMs`)
	t.Logf("viewer joined at frame %d of the GOP, decoded its first frame %.0f ms later, at frame %d", joinedAt, first, decodedAt)
	if first > 2000 {
		t.Errorf("first frame %.0f ms after joining, want under 2000", first)
	}
	if decodedAt >= gop {
		t.Errorf("first frame decoded at frame %d, after the next keyframe (%d): the GOP cache did not start the decoder", decodedAt, gop)
	}

	settle := time.Now()
	wait.For(t, 5*time.Second, "a second of playing", func() bool { return time.Since(settle) > time.Second })
	before, sentBefore := peers.Eval[videoStats](t, tab, `videoStats()`), box.framesSent.Load()
	start := time.Now()
	wait.For(t, 5*time.Second, "two more seconds of playing", func() bool { return time.Since(start) > 2*time.Second })
	after, sentAfter := peers.Eval[videoStats](t, tab, `videoStats()`), box.framesSent.Load()
	decoded, sent := after.FramesDecoded-before.FramesDecoded, int(sentAfter-sentBefore)
	delay := 0.0
	if n := after.JitterBufferEmittedCount - before.JitterBufferEmittedCount; n > 0 {
		delay = (after.JitterBufferDelay - before.JitterBufferDelay) / float64(n) * 1000
	}
	st := h.sfu.Status()
	t.Logf("then decoded %d frames while the box sent %d (%.1f fps), jitter buffer %.0f ms per frame, %d NACKs and %d PLIs from Chromium; hub forwarded %d PLIs",
		decoded, sent, float64(sent)/time.Since(start).Seconds(), delay, after.NackCount, after.PliCount, st.PLIsForwarded)
	// The window's edges cut a frame or two; on a loaded machine the box's own
	// pacing slips, so the viewer is held to what the box really sent.
	if decoded < sent*8/10 || decoded > sent+5 {
		t.Errorf("viewer decoded %d frames while the box sent %d: it does not keep up with live", decoded, sent)
	}
	p50, p99 := bucketQuantile(t, h.sfu.metrics.forwardDelay, 0.5), bucketQuantile(t, h.sfu.metrics.forwardDelay, 0.99)
	t.Logf("hub's forwarding delay, box track to viewer socket: p50 ≤ %s, p99 ≤ %s", p50, p99)
	// The p99 is a benchmark figure (goal < 5 ms) that a starved machine misses;
	// the median stays low unless something in the fan-out blocks.
	if p50 > 5*time.Millisecond {
		t.Errorf("hub holds live packets %s at the median: something blocks the fan-out", p50)
	}
	if delay > 500 {
		t.Errorf("viewer holds frames %.0f ms in its jitter buffer: the burst left it behind live", delay)
	}
}

// bucketQuantile is the upper bound of the histogram bucket holding quantile q.
func bucketQuantile(t *testing.T, h prometheus.Histogram, q float64) time.Duration {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	total := float64(m.GetHistogram().GetSampleCount())
	for _, b := range m.GetHistogram().GetBucket() {
		if float64(b.GetCumulativeCount()) >= q*total {
			return time.Duration(b.GetUpperBound() * float64(time.Second))
		}
	}
	return time.Duration(math.MaxInt64)
}
