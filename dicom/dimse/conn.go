package dimse

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// acceptedContext is a presentation context both sides agreed on.
type acceptedContext struct {
	AbstractSyntax string
	TransferSyntax string
}

// Errors the message layer reports when the peer leaves the data phase.
var (
	errReleaseRequested = errors.New("peer requested release")
	errReleaseReplied   = errors.New("peer replied to release")
)

// PeerAbortError is returned when the peer sends A-ABORT.
type PeerAbortError struct{ Source, Reason byte }

func (e *PeerAbortError) Error() string {
	return fmt.Sprintf("peer aborted the association (source %d, reason %d)", e.Source, e.Reason)
}

// conn is one established association's transport: it reads PDVs across P-DATA-TF
// PDUs, assembles commands, streams data sets, and fragments what it sends so that
// no PDU exceeds the peer's maximum.
type conn struct {
	nc       net.Conn
	pr       *Reader
	maxSend  uint32 // peer's max P-DATA-TF body; 0 means unlimited
	contexts map[byte]acceptedContext
	pending  []PDV
	idle     time.Duration // read deadline for each PDU

	// deadline coordinates the reader's per-PDU deadline with a shutdown in progress.
	mu       sync.Mutex
	stopping bool
	stopAt   time.Time
	cause    stopCause
	busy     bool // inside a message: let it finish on shutdown
}

func newConn(nc net.Conn, maxRecv uint32, idle time.Duration) *conn {
	return &conn{nc: nc, pr: NewReader(bufio.NewReaderSize(nc, 64<<10), maxRecv), idle: idle,
		contexts: map[byte]acceptedContext{}}
}

// armDeadline sets the read deadline for the next PDU: the idle timeout normally;
// during shutdown, at once between messages or the grace deadline inside one.
func (c *conn) armDeadline() {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopping && !c.busy:
		c.nc.SetReadDeadline(time.Now())
	case c.stopping:
		c.nc.SetReadDeadline(c.stopAt)
	case c.idle > 0:
		c.nc.SetReadDeadline(time.Now().Add(c.idle))
	default:
		c.nc.SetReadDeadline(time.Time{})
	}
}

// stop asks the association to end after the message in progress, or by grace. The
// first cause is the one reported.
func (c *conn) stop(grace time.Duration, cause stopCause) {
	c.mu.Lock()
	if c.stopping && !c.stopAt.After(time.Now().Add(grace)) {
		c.mu.Unlock()
		return
	}
	if !c.stopping {
		c.cause = cause
	}
	c.stopping = true
	c.stopAt = time.Now().Add(grace)
	if c.busy {
		c.nc.SetReadDeadline(c.stopAt)
	} else {
		c.nc.SetReadDeadline(time.Now())
	}
	c.mu.Unlock()
}

func (c *conn) setBusy(b bool) {
	c.mu.Lock()
	c.busy = b
	c.mu.Unlock()
}

func (c *conn) stopCause() stopCause {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

func (c *conn) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// nextPDV returns the next PDV, reading PDUs as needed. Release and abort PDUs end
// the data phase with errReleaseRequested, errReleaseReplied or *PeerAbortError.
func (c *conn) nextPDV() (PDV, error) {
	for len(c.pending) == 0 {
		c.armDeadline()
		p, err := c.pr.Read()
		if err != nil {
			return PDV{}, err
		}
		switch p := p.(type) {
		case *PData:
			c.pending = p.PDVs
		case *ReleaseRQ:
			return PDV{}, errReleaseRequested
		case *ReleaseRP:
			return PDV{}, errReleaseReplied
		case *Abort:
			return PDV{}, &PeerAbortError{Source: p.Source, Reason: p.Reason}
		default:
			return PDV{}, fmt.Errorf("%w: unexpected PDU type 0x%02x during the data phase", ErrMalformedPDU, p.pduType())
		}
	}
	v := c.pending[0]
	c.pending = c.pending[1:]
	if _, ok := c.contexts[v.ContextID]; !ok {
		return v, fmt.Errorf("%w: PDV on presentation context %d, which was not accepted", ErrMalformedPDU, v.ContextID)
	}
	return v, nil
}

// readCommand reads one whole command set and returns it with its context ID.
func (c *conn) readCommand() (byte, *Command, error) {
	var buf []byte
	var ctx byte
	for first := true; ; first = false {
		v, err := c.nextPDV()
		if err != nil {
			return 0, nil, err
		}
		if first {
			c.setBusy(true)
			ctx = v.ContextID
		}
		if !v.Command {
			return 0, nil, fmt.Errorf("%w: data set fragment where a command was expected", ErrMalformedPDU)
		}
		if v.ContextID != ctx {
			return 0, nil, fmt.Errorf("%w: command fragments on contexts %d and %d", ErrMalformedPDU, ctx, v.ContextID)
		}
		if len(buf)+len(v.Data) > maxCommand {
			return 0, nil, fmt.Errorf("%w: command set longer than %d bytes", ErrMalformedCommand, maxCommand)
		}
		buf = append(buf, v.Data...)
		if v.Last {
			break
		}
	}
	cmd, err := DecodeCommand(buf)
	return ctx, cmd, err
}

// readDataSet streams the data set fragments on context ctx into w. A write error
// does not stop the reading: the rest is drained so that the association can answer
// with a status; it is returned as werr. err is a protocol or transport error.
func (c *conn) readDataSet(ctx byte, w io.Writer) (n int64, werr, err error) {
	for {
		v, err := c.nextPDV()
		if err != nil {
			return n, werr, err
		}
		if v.Command {
			return n, werr, fmt.Errorf("%w: command fragment inside a data set", ErrMalformedPDU)
		}
		if v.ContextID != ctx {
			return n, werr, fmt.Errorf("%w: data set fragments on contexts %d and %d", ErrMalformedPDU, ctx, v.ContextID)
		}
		n += int64(len(v.Data))
		if werr == nil && len(v.Data) > 0 {
			_, werr = w.Write(v.Data)
		}
		if v.Last {
			return n, werr, nil
		}
	}
}

// fragmentSize is the most data one PDV may carry towards the peer.
func (c *conn) fragmentSize() int {
	if c.maxSend == 0 || c.maxSend > 1<<20 {
		return 1<<20 - 6
	}
	if c.maxSend < 64 {
		return 58
	}
	return int(c.maxSend) - 6
}

// writeCommand sends a command set on context ctx.
func (c *conn) writeCommand(ctx byte, cmd *Command) error {
	return c.writeFragments(ctx, true, cmd.Encode())
}

func (c *conn) writeFragments(ctx byte, command bool, b []byte) error {
	max := c.fragmentSize()
	for {
		n := min(len(b), max)
		last := n == len(b)
		bufs := net.Buffers{pdvHeader(ctx, command, last, n), b[:n]}
		if _, err := bufs.WriteTo(c.nc); err != nil {
			return err
		}
		b = b[n:]
		if last {
			return nil
		}
	}
}

// writeDataSet sends size bytes from r as data set fragments on context ctx.
func (c *conn) writeDataSet(ctx byte, r io.Reader, size int64) error {
	max := c.fragmentSize()
	buf := make([]byte, min(int64(max), max64(size, 1)))
	for sent := int64(0); ; {
		n := int(min(int64(len(buf)), size-sent))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return fmt.Errorf("read data set at byte %d: %w", sent, err)
		}
		sent += int64(n)
		last := sent == size
		bufs := net.Buffers{pdvHeader(ctx, false, last, n), buf[:n]}
		if _, err := bufs.WriteTo(c.nc); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func (c *conn) abort(source, reason byte) {
	c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.nc.Write((&Abort{Source: source, Reason: reason}).Encode())
}
