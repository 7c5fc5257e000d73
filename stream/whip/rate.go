package whip

import "time"

// gateBurst is how much of the video budget the gate lets pass at once: one second,
// so that an IDR several times the size of a P-frame goes through whole, while over
// any longer stretch video stays within its budget and leaves the link's remaining
// room to audio and the vitals channels.
const gateBurst = time.Second

// videoGate admits whole video frames against the video budget with a token bucket.
// It replaces pion's leaky-bucket pacer, whose queue has no bound and would delay
// everything behind a stream the link cannot carry: the box never transcodes, so the
// only things it can do with too much video are to drop frames here and to tell the
// camera side (through the budget) to switch to its smaller stream.
//
// Tokens may go negative: a frame is admitted when the bucket is not in debt, so an
// IDR larger than the whole burst still passes, and the frames after it wait until the
// debt is paid. After a dropped frame nothing is sent until the next keyframe, since
// the frames in between would refer to the one that is missing.
type videoGate struct {
	budget       int     // bit/s
	tokens       float64 // bytes
	last         time.Time
	waitKeyframe bool
	// overBudget is set while the gate waits for a keyframe because the budget ran
	// out (not because a session just connected), so that drops are told apart.
	overBudget bool
}

// setBudget changes the budget from now on; the first budget starts with a full
// bucket, so that the first IDR passes at once.
func (g *videoGate) setBudget(bps int, now time.Time) {
	if g.last.IsZero() {
		g.budget, g.last = bps, now
		g.tokens = float64(bps) / 8 * gateBurst.Seconds()
		return
	}
	g.refill(now)
	g.budget = bps
}

func (g *videoGate) refill(now time.Time) {
	dt := now.Sub(g.last).Seconds()
	g.last = now
	limit := float64(g.budget) / 8 * gateBurst.Seconds()
	g.tokens = min(g.tokens+float64(g.budget)/8*dt, limit)
}

// admit decides whether a frame of size bytes is sent now. startedWaiting is true
// when this frame made the gate start waiting for a keyframe, so that the caller asks
// the camera side for one once.
func (g *videoGate) admit(now time.Time, size int, keyframe bool) (admit, startedWaiting bool) {
	wasWaiting := g.waitKeyframe
	g.refill(now)
	if g.waitKeyframe && !keyframe {
		return false, false
	}
	if g.tokens < 0 || g.budget <= 0 {
		g.waitKeyframe, g.overBudget = true, true
		return false, !wasWaiting
	}
	g.waitKeyframe, g.overBudget = false, false
	g.tokens -= float64(size)
	return true, false
}
