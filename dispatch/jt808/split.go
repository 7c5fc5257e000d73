package jt808

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Split cuts a message whose body exceeds max bytes (0 or more than MaxBody means
// MaxBody) into sub-packages with consecutive serial numbers starting at m.Serial, as
// the standard requires; a body that fits comes back as one unsplit packet.
func Split(m Message, max int) []Message {
	if max <= 0 || max > MaxBody {
		max = MaxBody
	}
	if len(m.Body) <= max {
		m.Packets, m.Packet = 0, 0
		return []Message{m}
	}
	n := (len(m.Body) + max - 1) / max
	out := make([]Message, 0, n)
	for i := 0; i < n; i++ {
		part := m
		part.Serial = m.Serial + uint16(i)
		part.Packets, part.Packet = uint16(n), uint16(i+1)
		end := min((i+1)*max, len(m.Body))
		part.Body = m.Body[i*max : end]
		out = append(out, part)
	}
	return out
}

// ReassemblyLimits bound what a peer can make the Reassembler hold.
type ReassemblyLimits struct {
	MaxPackets  int           // sub-packages of one message; 0 means 256
	MaxMessages int           // messages being assembled at once; 0 means 8
	Timeout     time.Duration // a message not complete by then is dropped; 0 means 60 s
}

// Reassembler joins sub-packages back into messages and says which are missing, so
// the receiver can ask for them again (0x8003 from the platform, 0x0005 from a
// terminal).
type Reassembler struct {
	lim     ReassemblyLimits
	pending map[partKey]*partial
	// Expired counts messages dropped incomplete; Refused counts sub-packages refused
	// by the limits.
	Expired, Refused int
}

type partKey struct {
	id          uint16
	phone       string
	firstSerial uint16
}

type partial struct {
	head    Message
	parts   map[uint16][]byte
	started time.Time
}

// ErrReassembly marks a sub-package the Reassembler refused.
var ErrReassembly = errors.New("jt808: sub-package refused")

// NewReassembler returns an empty Reassembler with lim (zero fields mean defaults).
func NewReassembler(lim ReassemblyLimits) *Reassembler {
	if lim.MaxPackets <= 0 {
		lim.MaxPackets = 256
	}
	if lim.MaxMessages <= 0 {
		lim.MaxMessages = 8
	}
	if lim.Timeout <= 0 {
		lim.Timeout = time.Minute
	}
	return &Reassembler{lim: lim, pending: map[partKey]*partial{}}
}

// Add takes one packet received at now. An unsplit packet comes straight back. A
// sub-package returns done=false until the last missing one arrives; then the whole
// message comes back with the first packet's header and Packets/Packet zero.
func (r *Reassembler) Add(m Message, now time.Time) (whole Message, done bool, err error) {
	if m.Packets == 0 {
		return m, true, nil
	}
	r.expire(now)
	if int(m.Packets) > r.lim.MaxPackets {
		r.Refused++
		return Message{}, false, fmt.Errorf("%w: 0x%04x in %d parts, more than %d", ErrReassembly, m.ID, m.Packets, r.lim.MaxPackets)
	}
	k := partKey{m.ID, m.Phone, m.Serial - (m.Packet - 1)}
	p := r.pending[k]
	if p == nil {
		if len(r.pending) >= r.lim.MaxMessages {
			r.Refused++
			return Message{}, false, fmt.Errorf("%w: %d messages already being assembled", ErrReassembly, len(r.pending))
		}
		p = &partial{head: m, parts: map[uint16][]byte{}, started: now}
		r.pending[k] = p
	}
	if m.Packets != p.head.Packets {
		r.Refused++
		return Message{}, false, fmt.Errorf("%w: 0x%04x part %d says %d parts, the first said %d", ErrReassembly, m.ID, m.Packet, m.Packets, p.head.Packets)
	}
	p.parts[m.Packet] = m.Body
	if len(p.parts) < int(p.head.Packets) {
		return Message{}, false, nil
	}
	delete(r.pending, k)
	whole = p.head
	whole.Serial = k.firstSerial
	whole.Packets, whole.Packet = 0, 0
	whole.Body = nil
	for i := uint16(1); i <= p.head.Packets; i++ {
		whole.Body = append(whole.Body, p.parts[i]...)
	}
	return whole, true, nil
}

// Incomplete is a message still missing sub-packages.
type Incomplete struct {
	ID          uint16
	Phone       string
	FirstSerial uint16
	Missing     []uint16 // 1-based packet indexes
}

// Missing lists the messages still being assembled and the packets each lacks, for a
// re-request.
func (r *Reassembler) Missing() []Incomplete {
	var out []Incomplete
	for k, p := range r.pending {
		inc := Incomplete{ID: k.id, Phone: k.phone, FirstSerial: k.firstSerial}
		for i := uint16(1); i <= p.head.Packets; i++ {
			if _, ok := p.parts[i]; !ok {
				inc.Missing = append(inc.Missing, i)
			}
		}
		out = append(out, inc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FirstSerial < out[j].FirstSerial })
	return out
}

func (r *Reassembler) expire(now time.Time) {
	for k, p := range r.pending {
		if now.Sub(p.started) > r.lim.Timeout {
			delete(r.pending, k)
			r.Expired++
		}
	}
}
