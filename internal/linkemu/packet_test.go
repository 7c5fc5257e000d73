package linkemu

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// buildIPv4 returns an IPv4 packet from src to dst carrying a TCP or UDP segment with
// payload and a correct transport checksum.
func buildIPv4(proto uint8, src, dst netip.Addr, payload []byte) []byte {
	thl := 8
	if proto == protoTCP {
		thl = 20
	}
	b := make([]byte, 20+thl+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	seg := b[20:]
	binary.BigEndian.PutUint16(seg[0:], 40000)
	binary.BigEndian.PutUint16(seg[2:], 443)
	if proto == protoTCP {
		seg[12] = 5 << 4
		seg[13] = 0x18 // PSH|ACK
	} else {
		binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
		seg[6] = 1 // non-zero: checksummed
	}
	copy(seg[thl:], payload)
	h, err := parseIPv4(b)
	if err != nil {
		panic(err)
	}
	fixChecksum(b, h)
	return b
}

var (
	testSrc = netip.MustParseAddr("10.201.0.2")
	testDst = netip.MustParseAddr("10.202.0.1")
)

func TestParseIPv4(t *testing.T) {
	pkt := buildIPv4(protoUDP, testSrc, testDst, []byte("hello"))
	h, err := parseIPv4(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if h.src != testSrc || h.dst != testDst || h.proto != protoUDP || h.headerLen != 20 || h.totalLen != len(pkt) {
		t.Errorf("parsed %+v", h)
	}
	if off, ok := payloadOffset(pkt, h); !ok || string(pkt[off:]) != "hello" {
		t.Errorf("payload at %d (%v)", off, ok)
	}
	if transportChecksum(pkt, h) != 0 {
		t.Error("checksum of a built packet does not verify")
	}
	for name, b := range map[string][]byte{
		"empty":        nil,
		"short":        pkt[:10],
		"ihl 4":        append([]byte{0x44}, pkt[1:]...),
		"total > read": pkt[:len(pkt)-1],
	} {
		if _, err := parseIPv4(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parseIPv4([]byte{0x60, 0, 0, 0}); err != errNotIPv4 {
		t.Errorf("IPv6: %v, want errNotIPv4", err)
	}
	// A bare TCP ACK carries no payload to corrupt.
	ack := buildIPv4(protoTCP, testSrc, testDst, nil)
	if h, _ := parseIPv4(ack); corrupt(ack, h, 3, true) {
		t.Error("corrupted a packet without payload")
	}
}

// TestCorrupt: one payload bit flips; with fix the transport checksum still verifies,
// without it the receiver would find the damage.
func TestCorrupt(t *testing.T) {
	for _, proto := range []uint8{protoTCP, protoUDP} {
		for _, fix := range []bool{false, true} {
			pkt := buildIPv4(proto, testSrc, testDst, bytes.Repeat([]byte{0xAA}, 100))
			orig := bytes.Clone(pkt)
			h, _ := parseIPv4(pkt)
			if !corrupt(pkt, h, 12345, fix) {
				t.Fatalf("proto %d: nothing corrupted", proto)
			}
			off, _ := payloadOffset(pkt, h)
			diff := 0
			for i := off; i < len(pkt); i++ {
				for x := pkt[i] ^ orig[i]; x != 0; x &= x - 1 {
					diff++
				}
			}
			if diff != 1 {
				t.Errorf("proto %d: %d payload bits differ, want 1", proto, diff)
			}
			if verifies := transportChecksum(pkt, h) == 0; verifies != fix {
				t.Errorf("proto %d fix=%v: checksum verifies = %v", proto, fix, verifies)
			}
		}
	}
}

// FuzzParseIPv4 feeds arbitrary bytes to the header parser and, for what it accepts,
// checks the lengths it reports and that corruption with a fixed checksum verifies.
func FuzzParseIPv4(f *testing.F) {
	f.Add(buildIPv4(protoUDP, testSrc, testDst, []byte("hello")))
	f.Add(buildIPv4(protoTCP, testSrc, testDst, []byte("GET / HTTP/1.1\r\n")))
	f.Add(buildIPv4(protoTCP, testSrc, testDst, nil))
	f.Add([]byte{0x45, 0, 0, 20})
	f.Add([]byte{0x4f, 0, 0, 60, 0, 0, 0x20, 0, 64, 6})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseIPv4(b)
		if err != nil {
			return
		}
		if h.headerLen < 20 || h.totalLen < h.headerLen || h.totalLen > len(b) {
			t.Fatalf("accepted inconsistent lengths %+v for %d bytes", h, len(b))
		}
		off, ok := payloadOffset(b, h)
		if !ok {
			return
		}
		if off <= h.headerLen || off >= h.totalLen {
			t.Fatalf("payload offset %d outside %d..%d", off, h.headerLen, h.totalLen)
		}
		c := bytes.Clone(b)
		checksummed := h.proto == protoTCP || binary.BigEndian.Uint16(b[h.headerLen+6:]) != 0
		if !corrupt(c, h, len(b)*7, true) {
			t.Fatal("payload found but not corrupted")
		}
		if checksummed && transportChecksum(c, h) != 0 {
			t.Fatal("checksum does not verify after fixing it")
		}
	})
}
