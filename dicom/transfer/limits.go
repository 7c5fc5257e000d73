package transfer

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Defaults of the hub's bounds on what boxes may make it hold at once. An append in
// progress costs the hub a scratch file of at most MaxChunk on disk and a few tens
// of KiB of memory; a manifest in progress costs up to maxManifest of memory.
const (
	// DefaultMaxAppendsPerBox: a box sends forward.parallel (8 by default) chunks at
	// once; after a link outage its cut-off requests may linger on the hub until the
	// old connection times out, beside the new ones. Twice that leaves room.
	DefaultMaxAppendsPerBox = 16
	// DefaultMaxAppends bounds appends of all boxes together: at most 256 MiB of
	// scratch files, and a few MiB of memory.
	DefaultMaxAppends = 64
	// manifestsPerBox and maxManifests bound manifests being read and parsed, each
	// held in memory whole (at most maxManifest): a box sends one per study at a time.
	manifestsPerBox = 2
	maxManifests    = 8
	// decodeSlots is how many chunks are zstd-decoded at once, each decoder holding
	// a window of at most MaxChunk; decoding reads a local scratch file, so a box
	// cannot stall it.
	decodeSlots = 4
	// busyRetryAfter is what a refused box is told to wait, in seconds.
	busyRetryAfter = "1"
)

// slots counts requests in progress per box and in all, and refuses (rather than
// queues) one over either bound: a queued request would hold its stream, and its
// buffered body, while it waits.
type slots struct {
	perBox, total int

	mu    sync.Mutex
	byBox map[string]int
	all   int
}

func newSlots(perBox, total int) *slots {
	return &slots{perBox: perBox, total: total, byBox: map[string]int{}}
}

// acquire takes a slot for device, or reports false when the box or the hub is at
// its bound. release gives the slot back; call it once.
func (s *slots) acquire(device string) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.all >= s.total || s.byBox[device] >= s.perBox {
		return nil, false
	}
	s.all++
	s.byBox[device]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.all--
			if s.byBox[device]--; s.byBox[device] == 0 {
				delete(s.byBox, device)
			}
		})
	}, true
}

// inUse returns the slots taken in all.
func (s *slots) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.all
}

// busy refuses a request over its box's or the hub's bound on concurrent work; the
// box retries the request later, as after any 429.
func (in *Ingest) busy(w http.ResponseWriter, r *http.Request, what string) {
	in.m.busy.WithLabelValues(what).Inc()
	if n, ok := in.busyLog.note(time.Now()); ok {
		in.log.Warn("transfer: refused requests over the bound on concurrent work", "what", what,
			"device", deviceOf(r.Context()), "remote", r.RemoteAddr, "refused_since_last_line", n)
	}
	w.Header().Set("Retry-After", busyRetryAfter)
	writeProblem(w, http.StatusTooManyRequests, ProblemBusy, "too many "+what+" in progress",
		fmt.Sprintf("this box or the hub is at its bound on concurrent %s; retry after %s s", what, busyRetryAfter))
}

// decoderPool lends streaming zstd decoders, decodeSlots of them, each bounded to a
// window of MaxChunk so that no frame can make one hold more.
type decoderPool struct {
	free chan *zstd.Decoder
}

func newDecoderPool(n int) (*decoderPool, error) {
	p := &decoderPool{free: make(chan *zstd.Decoder, n)}
	for range n {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxChunk),
			zstd.WithDecoderMaxWindow(MaxChunk), zstd.WithDecoderLowmem(true))
		if err != nil {
			p.close()
			return nil, fmt.Errorf("transfer: zstd decoder: %w", err)
		}
		p.free <- d
	}
	return p, nil
}

// decode decodes the zstd frame read from src into dst, at most limit bytes, and
// returns how many it wrote. A frame that does not decode is a *badChunkError.
func (p *decoderPool) decode(dst io.Writer, src io.Reader, limit int64) (int64, error) {
	d := <-p.free
	defer func() { p.free <- d }()
	if err := d.Reset(src); err != nil {
		return 0, &badChunkError{err}
	}
	defer d.Reset(nil)
	n, err := io.Copy(taggedWriter{dst}, io.LimitReader(d, limit))
	var werr writeError
	if errors.As(err, &werr) {
		return n, werr.err
	}
	if err != nil {
		return n, &badChunkError{err}
	}
	return n, nil
}

// taggedWriter marks its writer's errors, so that a failing disk is not taken for a
// bad frame.
type taggedWriter struct{ w io.Writer }

type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

func (t taggedWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		err = writeError{err}
	}
	return n, err
}

// close releases the decoders that are not lent out.
func (p *decoderPool) close() {
	for {
		select {
		case d := <-p.free:
			d.Close()
		default:
			return
		}
	}
}

// busyLogEvery is how often at most the hub logs refusals over its bounds: a box
// that floods them must not flood the log as well; the metric counts each one.
const busyLogEvery = 10 * time.Second

// logThrottle lets a line through at most once per busyLogEvery and counts the
// events in between.
type logThrottle struct {
	mu      sync.Mutex
	last    time.Time
	pending int
}

// note counts one event and reports whether to log now, with the events it covers.
func (l *logThrottle) note(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending++
	if !l.last.IsZero() && now.Sub(l.last) < busyLogEvery {
		return 0, false
	}
	n := l.pending
	l.last, l.pending = now, 0
	return n, true
}
