package telemetry

import "time"

// Timeline rebuilds a steady time axis for the waveform channels of one monitor.
// Monitors send samples in bursts (a Nonin packet every 1/3 s, an HL7 message every
// second, serial buffers in USB adapters), so the box's receive time of a block jitters by
// tens of milliseconds. While a channel is continuous each block starts exactly where the
// previous one ended; the axis is re-anchored to the receive clock only when it has drifted
// further than Tolerance from it, or after a gap. A Timeline is not safe for concurrent use:
// the reader owns one per monitor.
type Timeline struct {
	// Tolerance is how far the steady axis may drift from the receive clock before it is
	// re-anchored; 0 means 500 ms.
	Tolerance time.Duration
	next      map[Code]channelClock
}

type channelClock struct {
	next time.Time
	rate float64
}

// Place sets w.Start. ReceiveTime must be the box time the block's last sample arrived.
// It reports whether the axis was re-anchored (the first block of a channel, a rate
// change, a gap, or drift beyond Tolerance); on re-anchor after a hole it sets w.Gap.
func (t *Timeline) Place(w *Wave) (reanchored bool) {
	if t.next == nil {
		t.next = make(map[Code]channelClock)
	}
	tol := t.Tolerance
	if tol <= 0 {
		tol = 500 * time.Millisecond
	}
	arrivalStart := w.ReceiveTime.Add(-w.Duration())
	c, ok := t.next[w.Code]
	switch {
	case !ok || c.rate != w.Rate || w.Gap:
		w.Start = arrivalStart
		reanchored = true
	default:
		drift := arrivalStart.Sub(c.next)
		if drift > tol || drift < -tol {
			w.Start = arrivalStart
			reanchored = true
			// Samples arrived later than the axis expects by more than the tolerance:
			// something was lost in between, so viewers must not join across it.
			if drift > tol {
				w.Gap = true
			}
		} else {
			w.Start = c.next
		}
	}
	t.next[w.Code] = channelClock{next: w.End(), rate: w.Rate}
	return reanchored
}

// Reset forgets every channel, e.g. after the port was reopened.
func (t *Timeline) Reset() { clear(t.next) }
