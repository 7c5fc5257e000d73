package sfu

import "github.com/pion/rtp"

// packetCache keeps the most recent packets of one of the box's tracks, indexed by
// sequence number. Every viewer's NACK is answered from it, so a lossy viewer costs
// the box nothing, and a joining viewer is started from the keyframe it still holds.
// It is not safe for concurrent use; its source guards it.
type packetCache struct {
	slots []*rtp.Packet
	mask  uint16
}

// newPacketCache returns a cache of size packets, rounded up to a power of two no
// larger than 32768 so that sequence numbers index it directly.
func newPacketCache(size int) *packetCache {
	n := 1
	for n < size && n < 1<<15 {
		n <<= 1
	}
	return &packetCache{slots: make([]*rtp.Packet, n), mask: uint16(n - 1)}
}

// len is the number of slots, the furthest back a packet can be found.
func (c *packetCache) len() int { return len(c.slots) }

// put stores p, replacing whatever packet shared its slot.
func (c *packetCache) put(p *rtp.Packet) { c.slots[p.SequenceNumber&c.mask] = p }

// get returns the packet with sequence number seq, or nil when it never arrived or
// was overwritten by a newer one.
func (c *packetCache) get(seq uint16) *rtp.Packet {
	p := c.slots[seq&c.mask]
	if p == nil || p.SequenceNumber != seq {
		return nil
	}
	return p
}

// seqNewer reports whether sequence number a comes after b, across wrap-around
// (RFC 3550 §A.1 arithmetic on 16 bits).
func seqNewer(a, b uint16) bool { return a != b && a-b < 1<<15 }
