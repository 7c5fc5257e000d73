package main

import (
	"sync"
	"time"

	"lifeline/internal/linkemu"
)

// uplinkWatch samples the link's uplink counter to find when the forwarding used it:
// from the first packets beyond keep-alives to the last packet before the study was
// complete. Its IP bytes over that time, against the uplink rate, is the goodput the
// issue asks for (what the link carried while it had work, headers and re-sends
// included).
type uplinkWatch struct {
	stopCh chan struct{}
	wg     sync.WaitGroup
	busy   time.Duration
	bytes  int64
}

// idleBytes is what the uplink may carry before the forwarding counts as started
// (handshakes, keep-alives, the status polls are on loopback).
const idleBytes = 64 << 10

func watchUplink(link *linkemu.Link) *uplinkWatch {
	w := &uplinkWatch{stopCh: make(chan struct{})}
	base := int64(link.Stats().Up.Bytes)
	w.wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var first, last time.Time
		var firstBytes, lastBytes int64
		for {
			select {
			case <-w.stopCh:
				if !first.IsZero() {
					w.busy, w.bytes = last.Sub(first), lastBytes-firstBytes
				}
				return
			case now := <-t.C:
				n := int64(link.Stats().Up.Bytes) - base
				if first.IsZero() && n > idleBytes {
					first, firstBytes = now, n
				}
				if n != lastBytes {
					last, lastBytes = now, n
				}
			}
		}
	})
	return w
}

// stop ends the watch and returns the busy time and the IP bytes sent in it.
func (w *uplinkWatch) stop() (time.Duration, int64) {
	close(w.stopCh)
	w.wg.Wait()
	return w.busy, w.bytes
}
