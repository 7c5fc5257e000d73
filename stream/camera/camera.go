package camera

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Camera is one [[camera]] of the box: a main stream and, optionally, the camera's
// sub stream (lower resolution and bitrate), one of which is forwarded at a time. Rate
// control calls UseSub; the switch happens at the next IDR picture of the other
// stream, so that the viewers' decoders never see a picture without its reference.
type Camera struct {
	main, sub Source

	mu        sync.Mutex
	wantSub   bool
	activeSub bool
	subErr    string
	subRetry  time.Time
	changed   chan struct{}
}

// NewCamera returns a camera of main and sub; sub may be nil.
func NewCamera(main, sub Source) *Camera {
	return &Camera{main: main, sub: sub, changed: make(chan struct{}, 1)}
}

// UseSub asks for the sub stream (true) or the main stream (false). It returns at
// once; the switch happens at the other stream's next IDR picture. Without a sub
// stream it does nothing.
func (c *Camera) UseSub(sub bool) {
	if c.sub == nil {
		return
	}
	c.mu.Lock()
	c.wantSub = sub
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Status reports the forwarded stream's status, with Stream saying which it is.
func (c *Camera) Status() Status {
	c.mu.Lock()
	active, subErr := c.activeSub, c.subErr
	c.mu.Unlock()
	src, name := c.main, "main"
	if active {
		src, name = c.sub, "sub"
	}
	var st Status
	if r, ok := src.(StatusReporter); ok {
		st = r.Status()
	}
	st.Stream = name
	if subErr != "" && !active {
		st.LastError = "sub stream: " + subErr
	}
	return st
}

// RequestKeyframe asks the forwarded stream's camera for an IDR picture, if it can.
func (c *Camera) RequestKeyframe() {
	c.mu.Lock()
	src := c.main
	if c.activeSub {
		src = c.sub
	}
	c.mu.Unlock()
	if k, ok := src.(KeyframeRequester); ok {
		k.RequestKeyframe()
	}
}

// subRetryAfter is how long a sub stream that failed is left alone before the camera
// tries it again.
const subRetryAfter = 10 * time.Second

// feed runs one source and hands its frames to the Camera's loop one at a time, so
// that Data stays valid until the loop is done with it.
type feed struct {
	sub    bool
	cancel context.CancelFunc
	frames chan handoff
	errc   chan error
	done   chan struct{}
}

type handoff struct {
	f    Frame
	done chan struct{}
}

// release tells the feed's source that its frame is done with; done has room for
// the one token, so this never blocks.
func (h handoff) release() { h.done <- struct{}{} }

func startFeed(ctx context.Context, src Source, sub bool) *feed {
	ctx, cancel := context.WithCancel(ctx)
	fd := &feed{sub: sub, cancel: cancel, frames: make(chan handoff), errc: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(fd.done)
		back := make(chan struct{}, 1) // one frame is out at a time
		err := src.Run(ctx, func(f Frame) {
			select {
			case fd.frames <- handoff{f, back}:
				select {
				case <-back:
				case <-ctx.Done():
				}
			case <-ctx.Done():
			}
		})
		if err == nil && ctx.Err() == nil {
			err = errors.New("camera: source stopped without an error")
		}
		fd.errc <- err
	}()
	return fd
}

// stop ends the feed's source and waits for it.
func (fd *feed) stop() {
	if fd != nil {
		fd.cancel()
		<-fd.done
	}
}

// retirement holds feeds that were told to stop and may still be ending (an RTSP
// source says TEARDOWN and waits up to a second for the answer), so that a switch
// never waits for the old stream, and Run still returns only after every source has.
type retirement []*feed

// retire tells fd to stop without waiting for it, and forgets feeds that have ended.
func (r *retirement) retire(fd *feed) {
	if fd == nil {
		return
	}
	fd.cancel()
	kept := (*r)[:0]
	for _, old := range *r {
		select {
		case <-old.done:
		default:
			kept = append(kept, old)
		}
	}
	*r = append(kept, fd)
}

// wait waits for every retired feed to end.
func (r retirement) wait() {
	for _, fd := range r {
		<-fd.done
	}
}

// Run forwards the active stream's frames until ctx ends (nil) or the main stream
// fails while forwarded (its error; the caller retries after a back-off). A failing
// sub stream only sends the camera back to the main one, and is tried again later.
func (c *Camera) Run(ctx context.Context, emit func(Frame)) error {
	// Start on the main stream even if the sub was asked for: a sub stream that
	// fails must not keep the camera dark; reconcile switches at its first IDR.
	c.mu.Lock()
	c.activeSub = false
	c.mu.Unlock()
	active := startFeed(ctx, c.main, false)
	var pending *feed
	var retired retirement
	defer func() { active.stop(); pending.stop(); retired.wait() }()
	for {
		pending = c.reconcile(ctx, active, pending, &retired)
		var pendingFrames chan handoff
		var pendingErr chan error
		if pending != nil {
			pendingFrames, pendingErr = pending.frames, pending.errc
		}
		select {
		case <-ctx.Done():
			return nil
		case h := <-active.frames:
			emit(h.f)
			h.release()
		case err := <-active.errc:
			if ctx.Err() != nil {
				return nil
			}
			if !active.sub {
				return err
			}
			// The sub stream failed while forwarded: go back to the main stream at
			// once (its first picture is an IDR) rather than leave the viewers dark.
			c.subFailed(err)
			retired.retire(active)
			active = startFeed(ctx, c.main, false)
		case h := <-pendingFrames:
			if h.f.Codec == H264 && h.f.Keyframe {
				retired.retire(active)
				active, pending = pending, nil
				c.mu.Lock()
				c.activeSub = active.sub
				c.mu.Unlock()
				emit(h.f)
			}
			h.release() // frames of the other stream before its IDR are dropped
		case err := <-pendingErr:
			retired.retire(pending)
			pending = nil
			c.subFailed(err)
		case <-c.changed:
		}
	}
}

// subFailed records why the sub stream failed, forwards the main stream, and leaves
// the sub alone for subRetryAfter.
func (c *Camera) subFailed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.activeSub = false
	c.subErr, c.subRetry = err.Error(), time.Now().Add(subRetryAfter)
}

func (c *Camera) pick(sub bool) Source {
	if sub {
		return c.sub
	}
	return c.main
}

// reconcile starts the stream asked for when it is not the active one, and stops a
// pending one no longer asked for. It returns the pending feed.
func (c *Camera) reconcile(ctx context.Context, active, pending *feed, retired *retirement) *feed {
	c.mu.Lock()
	want, retry := c.wantSub && c.sub != nil, c.subRetry
	c.mu.Unlock()
	switch {
	case want == active.sub:
		retired.retire(pending)
		return nil
	case pending != nil:
		return pending
	case want && time.Now().Before(retry):
		return nil // the sub stream failed a moment ago; the main one keeps playing
	}
	return startFeed(ctx, c.pick(want), want)
}
