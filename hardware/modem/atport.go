package modem

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// MaxLine bounds one line from the module; longer ones are cut and counted.
const MaxLine = 1024

// ErrCommand is a final ERROR, +CME ERROR or +CMS ERROR.
var ErrCommand = errors.New("modem: command failed")

// ErrTimeout is a command without a final result in time.
var ErrTimeout = errors.New("modem: no final result in time")

// ATPort runs one AT command at a time over a module's AT port. Its line reader
// copes with what real modules do: the command echoed back or not (ATE1 is the
// factory setting), unsolicited result codes (URCs) arriving in the middle of a
// response, blank lines around everything. Lines that belong to no pending command
// go to OnURC and are counted.
type ATPort struct {
	w     io.Writer
	lines chan string
	errc  chan error
	// OnURC, if set, sees every unsolicited line (set before the first command).
	OnURC func(string)

	mu    sync.Mutex
	stats ATStats
}

// ATStats counts what the port saw.
type ATStats struct {
	Commands int64
	Timeouts int64
	Errors   int64 // ERROR / +CME ERROR / +CMS ERROR
	URCs     int64
	Echoes   int64
	LongCut  int64
}

// NewATPort reads lines from r in a goroutine until r fails (close r to stop it) and
// writes commands to w.
func NewATPort(r io.Reader, w io.Writer) *ATPort {
	p := &ATPort{w: w, lines: make(chan string, 64), errc: make(chan error, 1)}
	go p.readLines(r)
	return p
}

func (p *ATPort) readLines(r io.Reader) {
	br := bufio.NewReaderSize(r, 4096)
	var cur []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			p.errc <- err
			close(p.lines)
			return
		}
		if b == '\r' || b == '\n' {
			if len(cur) > 0 {
				p.lines <- string(cur)
				cur = cur[:0]
			}
			continue
		}
		if len(cur) >= MaxLine {
			p.mu.Lock()
			p.stats.LongCut++
			p.mu.Unlock()
			continue
		}
		cur = append(cur, b)
	}
}

// Stats returns the counters.
func (p *ATPort) Stats() ATStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func (p *ATPort) count(f func(*ATStats)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

// Exec sends cmd (without "AT"'s line end) and returns the response lines that start
// with prefix (e.g. "+QENG:"), ending at OK, or ErrCommand at an error result, or
// ErrTimeout after timeout. Other lines are URCs.
func (p *ATPort) Exec(ctx context.Context, cmd, prefix string, timeout time.Duration) ([]string, error) {
	p.count(func(s *ATStats) { s.Commands++ })
	// Drop anything left from before (a late answer to a timed-out command).
	p.drainURCs()
	if _, err := io.WriteString(p.w, cmd+"\r"); err != nil {
		return nil, fmt.Errorf("modem: send %s: %w", cmd, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var out []string
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			p.count(func(s *ATStats) { s.Timeouts++ })
			return nil, fmt.Errorf("%w: %s after %s", ErrTimeout, cmd, timeout)
		case err := <-p.errc:
			p.errc <- err
			return nil, fmt.Errorf("modem: AT port closed during %s: %w", cmd, err)
		case l, ok := <-p.lines:
			if !ok {
				continue // errc has the reason
			}
			switch {
			case l == cmd:
				p.count(func(s *ATStats) { s.Echoes++ })
			case l == "OK":
				return out, nil
			case l == "ERROR" || strings.HasPrefix(l, "+CME ERROR:") || strings.HasPrefix(l, "+CMS ERROR:"):
				p.count(func(s *ATStats) { s.Errors++ })
				return out, fmt.Errorf("%w: %s: %s", ErrCommand, cmd, l)
			case prefix != "" && strings.HasPrefix(l, prefix):
				out = append(out, l)
			default:
				p.urc(l)
			}
		}
	}
}

func (p *ATPort) urc(l string) {
	p.count(func(s *ATStats) { s.URCs++ })
	if p.OnURC != nil {
		p.OnURC(l)
	}
}

func (p *ATPort) drainURCs() {
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return
			}
			if l != "OK" {
				p.urc(l)
			}
		default:
			return
		}
	}
}
