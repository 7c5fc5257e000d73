package appliance

import (
	"context"
	"sync"
	"time"

	"lifeline/internal/service"
	"lifeline/stream/camera"
	"lifeline/stream/whip"
)

// rateChooser picks the camera's main or sub stream from the video budget the
// publisher's congestion controller leaves: the sub stream while the link carries
// less than the main stream sends, the main stream again once it carries clearly more.
// The margin between the two thresholds keeps a budget that hovers near the main
// stream's rate from switching streams every second.
type rateChooser struct {
	cam *camera.Camera

	mu       sync.Mutex
	onSub    bool
	window   time.Time // start of the current measuring window
	bytes    int64     // bytes of video in the window
	mainRate int       // the main stream's measured rate, bit/s; 0 until measured
}

// rateWindow is how long the forwarded stream's rate is measured over: longer than a
// GOP's keyframe burst, short enough to follow a camera's bitrate change.
const rateWindow = 4 * time.Second

// Thresholds of the main/sub choice, as fractions of the main stream's rate.
const (
	subBelow  = 1.1 // go to the sub stream when the budget falls under 110 % of main
	mainAbove = 1.5 // come back when it rises over 150 %
)

func newRateChooser(cam *camera.Camera) *rateChooser {
	return &rateChooser{cam: cam, window: time.Now()}
}

// frame measures the forwarded video.
func (r *rateChooser) frame(f camera.Frame) {
	if f.Codec != camera.H264 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bytes += int64(len(f.Data))
	if el := time.Since(r.window); el >= rateWindow {
		if !r.onSub {
			r.mainRate = int(float64(r.bytes*8) / el.Seconds())
		}
		r.bytes, r.window = 0, time.Now()
	}
}

// budget takes the publisher's video budget (whip.Config.OnVideoBudget).
func (r *rateChooser) budget(bps int) {
	if r.cam == nil {
		return
	}
	r.mu.Lock()
	main, onSub := r.mainRate, r.onSub
	switch {
	case main == 0:
		// Not measured yet: stay on the main stream.
	case !onSub && float64(bps) < subBelow*float64(main):
		r.onSub = true
	case onSub && float64(bps) > mainAbove*float64(main):
		r.onSub = false
	}
	changed := onSub != r.onSub
	onSub = r.onSub
	r.mu.Unlock()
	if changed {
		r.cam.UseSub(onSub)
	}
}

// stream names the stream forwarded, for the status page.
func (r *rateChooser) stream() string {
	if r.cam == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.onSub {
		return "sub"
	}
	return "main"
}

// forwardShare makes the DICOM forwarder yield to the live stream: while a session is
// connected the forwarder may use at most what the stream's congestion controller
// estimates the link carries, so the two share the uplink instead of studies crowding
// out the patient's picture; never less than forwardFloor, so a STAT study still moves.
// With no session the configured cap (none by default) applies again.
type forwardShare struct {
	set        func(bitsPerSecond int64)
	configured int64 // forward.max_rate_mbit in bit/s; 0 means no cap
	applied    int64
	yielding   bool
}

// forwardFloor is the least the forwarder keeps while the stream runs.
const forwardFloor = 500_000

// update applies the share for the publisher's state.
func (s *forwardShare) update(st whip.Status) {
	want, yielding := s.configured, st.State == whip.StateConnected
	if yielding {
		want = max(int64(st.TargetBitrate), forwardFloor)
		if s.configured > 0 {
			want = min(want, s.configured)
		}
	}
	// A change of under 10 % is not worth a log line and a limiter reset.
	if yielding == s.yielding && want > s.applied*9/10 && want < s.applied*11/10 {
		return
	}
	s.applied, s.yielding = want, yielding
	s.set(want)
}

// sharePeriod is how often the forwarder's share follows the stream's estimate.
const sharePeriod = time.Second

// publish runs the publisher and keeps the forwarder's share in step with it.
func (ls *liveStream) publish(ctx context.Context, h *service.Health) error {
	errc := make(chan error, 1)
	go func() { errc <- ls.pub.Run(ctx, h) }()
	tick := time.NewTicker(sharePeriod)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			ls.forward.update(whip.Status{State: whip.StateStopped})
			return err
		case <-tick.C:
			ls.forward.update(ls.pub.Status())
		}
	}
}
