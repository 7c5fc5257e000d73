package talkback

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// Sink is where the hospital's voice goes on the box. Write takes one RTP packet of
// G.711 µ-law and never blocks; Run does the slow part until ctx ends.
type Sink struct {
	spec string
	log  *slog.Logger
	// One of the two outputs.
	argv []string     // a command reading PCM on stdin
	rtp  *net.UDPAddr // the intercom

	queue chan []byte

	mu     sync.Mutex
	status Status
	last   uint16 // sequence number of the last packet taken
	any    bool
}

// Status is the sink's entry in the box's status.
type Status struct {
	Sink      string    `json:"sink"`
	Packets   uint64    `json:"packets"`
	Dropped   uint64    `json:"dropped"` // late, duplicate, or queue full
	LastVoice time.Time `json:"last_voice,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// queueDepth bounds the voice waiting for a slow sink: 2 s of 20 ms packets. Older
// voice than that is useless to a crew and is dropped.
const queueDepth = 100

// Open checks spec, which is either a command line that plays 16-bit little-endian
// mono PCM at 8 kHz from its standard input ("aplay -q -t raw -f S16_LE -r 8000 -c 1")
// (split at spaces, no shell quoting) or "rtp://host:port", where the packets go on as received (payload type 0, PCMU).
func Open(spec string, log *slog.Logger) (*Sink, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Sink{spec: spec, log: log, queue: make(chan []byte, queueDepth), status: Status{Sink: spec}}
	if strings.HasPrefix(spec, "rtp://") {
		u, err := url.Parse(spec)
		if err != nil || u.Port() == "" || u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("talk-back sink %q: want rtp://host:port", spec)
		}
		addr, err := net.ResolveUDPAddr("udp", u.Host)
		if err != nil {
			return nil, fmt.Errorf("talk-back sink %q: %w", spec, err)
		}
		s.rtp = addr
		return s, nil
	}
	// Split at spaces, with no shell quoting: a command that needs more is a script.
	argv := strings.Fields(spec)
	if len(argv) == 0 {
		return nil, fmt.Errorf("talk-back sink %q: not a command line or rtp://host:port", spec)
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, fmt.Errorf("talk-back sink %q: %w", spec, err)
	}
	s.argv = argv
	return s, nil
}

// Write takes one packet: RTP to the intercom as it came, PCM to the command. A packet
// older than the last one taken (reordered past its time, or duplicated) is dropped.
func (s *Sink) Write(p *rtp.Packet) {
	s.mu.Lock()
	late := s.any && int16(p.SequenceNumber-s.last) <= 0
	if !late {
		s.last, s.any = p.SequenceNumber, true
		s.status.Packets++
		s.status.LastVoice = time.Now()
	} else {
		s.status.Dropped++
	}
	s.mu.Unlock()
	if late {
		return
	}
	var out []byte
	if s.rtp != nil {
		b, err := p.Marshal()
		if err != nil {
			return
		}
		out = b
	} else {
		pcm := DecodeULaw(nil, p.Payload)
		out = make([]byte, 2*len(pcm))
		for i, v := range pcm {
			binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
		}
	}
	select {
	case s.queue <- out:
	default:
		s.mu.Lock()
		s.status.Dropped++
		s.mu.Unlock()
	}
}

// Status returns the sink's counters.
func (s *Sink) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *Sink) failed(err error) {
	s.mu.Lock()
	s.status.LastError = err.Error()
	s.mu.Unlock()
}

// Run delivers the queued voice until ctx ends. A command that exits or fails is
// started again at the next voice, so a sound device that was busy once does not
// silence the doctor for the rest of the run.
func (s *Sink) Run(ctx context.Context) error {
	if s.rtp != nil {
		return s.runRTP(ctx)
	}
	var cmd *exec.Cmd
	var stdin io.WriteCloser
	stop := func() {
		if cmd != nil {
			stdin.Close()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			cmd = nil
		}
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-s.queue:
			if cmd == nil {
				c := exec.Command(s.argv[0], s.argv[1:]...)
				in, err := c.StdinPipe()
				if err == nil {
					err = c.Start()
				}
				if err != nil {
					s.failed(err)
					s.log.Error("talk-back: the sink command does not start; the crew cannot hear the hospital", "sink", s.spec, "err", err)
					continue
				}
				cmd, stdin = c, in
				s.log.Info("talk-back: playing the hospital's voice", "sink", s.spec, "pid", c.Process.Pid)
			}
			if _, err := stdin.Write(b); err != nil {
				s.failed(err)
				s.log.Warn("talk-back: the sink command stopped taking sound; starting it again at the next voice", "sink", s.spec, "err", err)
				stop()
			}
		}
	}
}

func (s *Sink) runRTP(ctx context.Context) error {
	conn, err := net.DialUDP("udp", nil, s.rtp)
	if err != nil {
		return fmt.Errorf("talk-back sink %s: %w", s.spec, err)
	}
	defer conn.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-s.queue:
			if _, err := conn.Write(b); err != nil && !errors.Is(err, net.ErrClosed) {
				// The intercom not listening (ICMP refused) is not the box's failure.
				s.failed(err)
			}
		}
	}
}
