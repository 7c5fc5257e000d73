package camera

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// probeFrames is how many pictures after the first keyframe the probe looks at: a
// second's worth at 30 fps shows whether the camera sends B-frames.
const probeFrames = 30

// Probe plays src until it has delivered a keyframe and probeFrames pictures after
// it, or until timeout, and returns what src then reports: the codec, profile and
// size, and what cannot be forwarded as it is. The box probes each camera at start
// so that the status page can say "High profile" or "H.265" instead of showing a
// black picture. The error is src's when it failed, or says that no picture came.
func Probe(ctx context.Context, src Source, timeout time.Duration) (Status, error) {
	r, ok := src.(StatusReporter)
	if !ok {
		return Status{}, fmt.Errorf("camera: %T does not report a status", src)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seen, sawKey := 0, false
	err := src.Run(ctx, func(f Frame) {
		if f.Codec != H264 {
			return
		}
		sawKey = sawKey || f.Keyframe
		if sawKey {
			seen++
		}
		if seen > probeFrames {
			cancel()
		}
	})
	st := r.Status()
	switch {
	case err != nil:
		return st, err
	case !sawKey && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return st, fmt.Errorf("camera %s: no decodable picture within %s", st.URL, timeout)
	}
	return st, nil
}
