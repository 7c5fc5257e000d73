package linkemu

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Direction names one half of the link.
type Direction int

// The two directions of a link.
const (
	Uplink   Direction = iota // box → hub
	Downlink                  // hub → box
)

func (d Direction) String() string {
	if d == Uplink {
		return "uplink"
	}
	return "downlink"
}

// maxPending bounds the packets a direction holds in flight, whatever its shape, so
// that an unlimited rate with a long delay cannot eat the test's memory.
const maxPending = 1 << 16

// timerSlack is how early a packet may leave. Go's timers wake up to a millisecond
// late when the process is idle (the poller sleeps in whole milliseconds), so aiming
// half a millisecond early centres the error on the intended time.
const timerSlack = 500 * time.Microsecond

// DirStats counts what one direction did since the link started.
type DirStats struct {
	Packets, Bytes uint64 // delivered to the far end
	// Dropped by reason: the modem buffer was full, random/burst loss, an outage, a
	// box address the network no longer routes.
	DroppedQueue, DroppedLoss, DroppedOutage, DroppedStale uint64
	Corrupted                                              uint64 // delivered with a bit flipped by the corruption hook
	WriteErrors                                            uint64 // the far TUN refused a packet (the kernel logged why)
	Backlog                                                int    // bytes in the modem buffer now
	InFlight                                               int    // packets admitted and not yet delivered
}

// Dropped returns the packets lost for any reason.
func (s DirStats) Dropped() uint64 {
	return s.DroppedQueue + s.DroppedLoss + s.DroppedOutage + s.DroppedStale
}

// Stats is a snapshot of both directions.
type Stats struct{ Up, Down DirStats }

// pump moves the packets of one direction: its reader admits what the near TUN emits,
// its deliverer writes each packet to the far TUN when the shaper says it arrives.
type pump struct {
	dir     Direction
	in, out *os.File
	log     *slog.Logger
	boxAddr func() netip.Addr // the address the network routes to the box now

	mu         sync.Mutex
	shaper     *Shaper
	rng        *rand.Rand // for the corruption hook's bit
	pending    pendingHeap
	seq        uint64
	corruptIn  int // corrupt the corruptIn-th payload packet from now; 0: disarmed
	corruptFix bool

	wake chan struct{}

	packets, bytes                    atomic.Uint64
	dropQueue, dropLoss, dropOutage   atomic.Uint64
	dropStale, corrupted, writeErrors atomic.Uint64
	lastWriteErrLog, lastReadErrLog   time.Time // touched by one goroutine each
	errReads                          int
}

func newPump(dir Direction, in, out *os.File, shaper *Shaper, rng *rand.Rand, boxAddr func() netip.Addr, log *slog.Logger) *pump {
	return &pump{
		dir: dir, in: in, out: out, shaper: shaper, rng: rng, boxAddr: boxAddr,
		log:  log.With("direction", dir.String()),
		wake: make(chan struct{}, 1),
	}
}

// readLoop admits packets from the near TUN until it is closed.
func (p *pump) readLoop(ctx context.Context) {
	scratch := make([]byte, 1<<16)
	for {
		n, err := p.in.Read(scratch)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
				return
			}
			// A TUN read fails only when the device is going away; back off so a
			// dying device cannot spin this loop.
			p.errReads++
			if time.Since(p.lastReadErrLog) > 5*time.Second {
				p.log.Warn("linkemu: reading the TUN device failed", "err", err, "failures", p.errReads)
				p.lastReadErrLog = time.Now()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if n == 0 {
			continue
		}
		pkt := make([]byte, n)
		copy(pkt, scratch[:n])
		p.admit(time.Now(), pkt)
	}
}

// admit runs one packet through the shaper and queues it for delivery.
func (p *pump) admit(now time.Time, pkt []byte) {
	h, err := parseIPv4(pkt)
	v4 := err == nil
	if v4 && p.stale(h) {
		p.dropStale.Add(1)
		return
	}
	p.mu.Lock()
	v := p.shaper.Admit(now, len(pkt))
	if v.Drop == Delivered && len(p.pending) >= maxPending {
		v.Drop = DropQueue
	}
	switch v.Drop {
	case DropQueue:
		p.mu.Unlock()
		p.dropQueue.Add(1)
		return
	case DropLoss:
		p.mu.Unlock()
		p.dropLoss.Add(1)
		return
	case DropOutage:
		p.mu.Unlock()
		p.dropOutage.Add(1)
		return
	}
	if p.corruptIn > 0 && v4 {
		if _, ok := payloadOffset(pkt, h); ok {
			p.corruptIn--
			if p.corruptIn == 0 && corrupt(pkt, h, p.rng.IntN(1<<30), p.corruptFix) {
				p.corrupted.Add(1)
				p.log.Info("linkemu: flipped a bit in a packet's payload", "src", h.src, "dst", h.dst, "checksum_fixed", p.corruptFix)
			}
		}
	}
	p.seq++
	heap.Push(&p.pending, pending{at: v.Deliver, seq: p.seq, pkt: pkt})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// stale reports whether h is sent from (uplink) or to (downlink) a box address that
// the network no longer routes, as after an address change: the carrier drops it.
func (p *pump) stale(h ipv4) bool {
	box := p.boxAddr()
	if p.dir == Uplink {
		return h.src != box
	}
	return h.dst != box
}

// deliverLoop writes packets to the far TUN at their delivery times until ctx ends.
func (p *pump) deliverLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due [][]byte
	for {
		due = due[:0]
		p.mu.Lock()
		now := time.Now()
		cutoff := now.Add(timerSlack)
		for len(p.pending) > 0 && !p.pending[0].at.After(cutoff) {
			it := p.pop()
			if p.shaper.Down(now) {
				// In flight when the radio went away: lost.
				p.dropOutage.Add(1)
				continue
			}
			due = append(due, it.pkt)
		}
		wait := time.Duration(-1)
		if len(p.pending) > 0 {
			wait = p.pending[0].at.Sub(cutoff)
		}
		p.mu.Unlock()
		for _, pkt := range due {
			p.write(pkt)
		}
		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-timer.C:
		}
	}
}

func (p *pump) write(pkt []byte) {
	if _, err := p.out.Write(pkt); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return
		}
		n := p.writeErrors.Add(1)
		if time.Since(p.lastWriteErrLog) > 5*time.Second {
			p.log.Warn("linkemu: the far TUN device refused a packet", "err", err, "size", len(pkt), "write_errors", n)
			p.lastWriteErrLog = time.Now()
		}
		return
	}
	p.packets.Add(1)
	p.bytes.Add(uint64(len(pkt)))
}

func (p *pump) stats() DirStats {
	p.mu.Lock()
	backlog, inflight := p.shaper.Backlog(time.Now()), len(p.pending)
	p.mu.Unlock()
	return DirStats{
		Packets: p.packets.Load(), Bytes: p.bytes.Load(),
		DroppedQueue: p.dropQueue.Load(), DroppedLoss: p.dropLoss.Load(),
		DroppedOutage: p.dropOutage.Load(), DroppedStale: p.dropStale.Load(),
		Corrupted: p.corrupted.Load(), WriteErrors: p.writeErrors.Load(),
		Backlog: backlog, InFlight: inflight,
	}
}

// withShaper runs fn with the shaper locked, for the link's controls.
func (p *pump) withShaper(fn func(s *Shaper)) {
	p.mu.Lock()
	fn(p.shaper)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// pop removes the next packet to deliver; the caller holds mu.
func (p *pump) pop() pending { return heap.Pop(&p.pending).(pending) }

// pending is a packet waiting for its delivery time; seq keeps equal times in order.
type pending struct {
	at  time.Time
	seq uint64
	pkt []byte
}

type pendingHeap []pending

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(pending)) }
func (h *pendingHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = pending{}
	*h = old[:len(old)-1]
	return it
}
