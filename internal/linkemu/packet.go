package linkemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// IP protocol numbers the corruption hook understands.
const (
	protoTCP = 6
	protoUDP = 17
)

// ipv4 is the part of an IPv4 header the link looks at.
type ipv4 struct {
	headerLen int // bytes, options included
	totalLen  int
	proto     uint8
	fragment  bool // a fragment other than a whole datagram
	src, dst  netip.Addr
}

var errNotIPv4 = errors.New("not an IPv4 packet")

// parseIPv4 reads the header of the IPv4 packet b, checking that the lengths it claims
// fit in b. Other IP versions return errNotIPv4.
func parseIPv4(b []byte) (ipv4, error) {
	if len(b) < 1 || b[0]>>4 != 4 {
		return ipv4{}, errNotIPv4
	}
	if len(b) < 20 {
		return ipv4{}, fmt.Errorf("IPv4 packet of %d bytes is shorter than a header", len(b))
	}
	h := ipv4{
		headerLen: int(b[0]&0x0f) * 4,
		totalLen:  int(binary.BigEndian.Uint16(b[2:4])),
		proto:     b[9],
		src:       netip.AddrFrom4([4]byte(b[12:16])),
		dst:       netip.AddrFrom4([4]byte(b[16:20])),
	}
	frag := binary.BigEndian.Uint16(b[6:8])
	h.fragment = frag&0x3fff != 0 // more-fragments flag or a non-zero offset
	switch {
	case h.headerLen < 20:
		return ipv4{}, fmt.Errorf("IPv4 header length %d is below 20", h.headerLen)
	case h.totalLen < h.headerLen:
		return ipv4{}, fmt.Errorf("IPv4 total length %d is below its header length %d", h.totalLen, h.headerLen)
	case h.totalLen > len(b):
		return ipv4{}, fmt.Errorf("IPv4 total length %d exceeds the %d bytes read", h.totalLen, len(b))
	}
	return h, nil
}

// payloadOffset returns where the TCP or UDP payload of packet b starts, and false when
// b carries no payload of either (another protocol, a fragment, a bare ACK).
func payloadOffset(b []byte, h ipv4) (int, bool) {
	if h.fragment {
		return 0, false
	}
	seg := b[h.headerLen:h.totalLen]
	off := 0
	switch h.proto {
	case protoTCP:
		if len(seg) < 20 {
			return 0, false
		}
		off = int(seg[12]>>4) * 4
		if off < 20 {
			return 0, false
		}
	case protoUDP:
		off = 8
	default:
		return 0, false
	}
	if off >= len(seg) {
		return 0, false
	}
	return h.headerLen + off, true
}

// corrupt flips bit (counted from the start of the TCP/UDP payload, modulo its size)
// of packet b. With fix it then recomputes the transport checksum, so that the packet
// passes the receiver's checks and the damage reaches the application, as a faulty
// middlebox that rewrites checksums would do. It reports false when b has no payload.
func corrupt(b []byte, h ipv4, bit int, fix bool) bool {
	off, ok := payloadOffset(b, h)
	if !ok {
		return false
	}
	n := h.totalLen - off
	bit %= n * 8
	if bit < 0 {
		bit += n * 8
	}
	b[off+bit/8] ^= 1 << (bit % 8)
	if fix {
		fixChecksum(b, h)
	}
	return true
}

// fixChecksum recomputes the TCP or UDP checksum of packet b over the IPv4 pseudo-header.
// A UDP packet sent without a checksum (zero) is left so.
func fixChecksum(b []byte, h ipv4) {
	seg := b[h.headerLen:h.totalLen]
	var at int
	switch h.proto {
	case protoTCP:
		at = 16
	case protoUDP:
		at = 6
		if binary.BigEndian.Uint16(seg[at:]) == 0 {
			return
		}
	default:
		return
	}
	if len(seg) < at+2 {
		return
	}
	seg[at], seg[at+1] = 0, 0
	sum := transportChecksum(b, h)
	if h.proto == protoUDP && sum == 0 {
		sum = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(seg[at:], sum)
}

// transportChecksum is the Internet checksum (RFC 1071) of the transport segment of b
// with the IPv4 pseudo-header. Over a segment whose checksum field is correct it is 0.
func transportChecksum(b []byte, h ipv4) uint16 {
	seg := b[h.headerLen:h.totalLen]
	var sum uint32
	sum += uint32(binary.BigEndian.Uint16(b[12:14])) + uint32(binary.BigEndian.Uint16(b[14:16]))
	sum += uint32(binary.BigEndian.Uint16(b[16:18])) + uint32(binary.BigEndian.Uint16(b[18:20]))
	sum += uint32(h.proto) + uint32(len(seg))
	for i := 0; i+1 < len(seg); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(seg[i:]))
	}
	if len(seg)%2 == 1 {
		sum += uint32(seg[len(seg)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
