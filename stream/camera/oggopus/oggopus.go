// Package oggopus reads Opus audio from an Ogg file (RFC 3533 pages, RFC 7845
// encapsulation): the packets as the encoder wrote them, each with its duration from
// its TOC byte (RFC 6716 §3.1), so that they can be sent as RTP without decoding. The
// box uses it for the demo clip's sound.
package oggopus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Bounds on what a file can make the reader hold.
const (
	// MaxPacketSize bounds one Opus packet (RFC 6716 allows at most 120 ms of
	// 510 kbit/s, under 8 KB; 61,440 bytes is its absolute limit).
	MaxPacketSize = 61440
	// MaxPackets bounds the packets of one file: an hour of 20 ms packets.
	MaxPackets = 180000
)

// Packet is one Opus packet and how long it plays.
type Packet struct {
	Data     []byte
	Duration time.Duration
}

// Stream is the Opus stream of an Ogg file.
type Stream struct {
	Channels int
	// PreSkip is how many 48 kHz samples at the start a decoder drops (RFC 7845 §4.2).
	PreSkip uint16
	// InputRate is the sample rate the encoder was given, for information only.
	InputRate uint32
	Packets   []Packet
}

var capturePattern = []byte("OggS")

// Read parses an Ogg Opus file of a single logical stream: the OpusHead and OpusTags
// headers, then the audio packets. Packets share memory with data unless they span
// pages.
func Read(data []byte) (*Stream, error) {
	packets, err := oggPackets(data)
	if err != nil {
		return nil, err
	}
	if len(packets) < 2 {
		return nil, errors.New("oggopus: fewer than the two header packets")
	}
	s, err := parseHead(packets[0])
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(packets[1], []byte("OpusTags")) {
		return nil, errors.New("oggopus: second packet is not OpusTags")
	}
	for i, p := range packets[2:] {
		d, err := PacketDuration(p)
		if err != nil {
			return nil, fmt.Errorf("oggopus: audio packet %d: %w", i, err)
		}
		s.Packets = append(s.Packets, Packet{Data: p, Duration: d})
	}
	return s, nil
}

// parseHead reads the identification header (RFC 7845 §5.1).
func parseHead(p []byte) (*Stream, error) {
	if len(p) < 19 || !bytes.HasPrefix(p, []byte("OpusHead")) {
		return nil, errors.New("oggopus: first packet is not an OpusHead")
	}
	if p[8]>>4 != 0 {
		return nil, fmt.Errorf("oggopus: OpusHead version %d not supported", p[8])
	}
	s := &Stream{Channels: int(p[9]), PreSkip: binary.LittleEndian.Uint16(p[10:]), InputRate: binary.LittleEndian.Uint32(p[12:])}
	if s.Channels == 0 {
		return nil, errors.New("oggopus: OpusHead with 0 channels")
	}
	return s, nil
}

// oggPackets joins the segments of every page into packets (RFC 3533 §6). It takes
// one logical stream; pages of another serial number are refused.
func oggPackets(data []byte) ([][]byte, error) {
	var packets [][]byte
	var partial []byte
	var serial uint32
	for page := 0; len(data) > 0; page++ {
		if len(data) < 27 || !bytes.HasPrefix(data, capturePattern) {
			return nil, fmt.Errorf("oggopus: page %d: no OggS capture pattern", page)
		}
		if data[4] != 0 {
			return nil, fmt.Errorf("oggopus: page %d: Ogg version %d", page, data[4])
		}
		s := binary.LittleEndian.Uint32(data[14:])
		if page == 0 {
			serial = s
		} else if s != serial {
			return nil, fmt.Errorf("oggopus: page %d belongs to another stream (serial %08x): only one stream is read", page, s)
		}
		nsegs := int(data[26])
		if len(data) < 27+nsegs {
			return nil, fmt.Errorf("oggopus: page %d: segment table cut short", page)
		}
		table := data[27 : 27+nsegs]
		body := data[27+nsegs:]
		size := 0
		for _, l := range table {
			size += int(l)
		}
		if len(body) < size {
			return nil, fmt.Errorf("oggopus: page %d: %d body bytes, the segment table says %d", page, len(body), size)
		}
		continued := data[5]&0x01 != 0
		if !continued && partial != nil {
			return nil, fmt.Errorf("oggopus: page %d: a packet was cut off by the page before", page)
		}
		for _, l := range table {
			partial = append(partial, body[:l]...)
			body = body[l:]
			if len(partial) > MaxPacketSize {
				return nil, fmt.Errorf("oggopus: page %d: packet over %d bytes", page, MaxPacketSize)
			}
			if l < 255 { // a lacing value under 255 ends the packet
				packets = append(packets, partial)
				partial = nil
				if len(packets) > MaxPackets+2 {
					return nil, fmt.Errorf("oggopus: more than %d packets", MaxPackets)
				}
			}
		}
		data = data[27+nsegs+size:]
	}
	if partial != nil {
		return nil, errors.New("oggopus: the last packet is cut off")
	}
	return packets, nil
}

// PacketDuration returns how long an Opus packet plays, from its TOC byte and frame
// count (RFC 6716 §3.1 and §3.2.5).
func PacketDuration(p []byte) (time.Duration, error) {
	if len(p) == 0 {
		return 0, errors.New("empty packet")
	}
	config := p[0] >> 3
	var frame time.Duration
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = []time.Duration{10, 20, 40, 60}[config%4] * time.Millisecond
	case config < 16: // hybrid: 10, 20 ms
		frame = []time.Duration{10, 20}[config%2] * time.Millisecond
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = []time.Duration{2500, 5000, 10000, 20000}[config%4] * time.Microsecond
	}
	frames := 1
	switch p[0] & 0x03 {
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 0, errors.New("code 3 packet without its frame count")
		}
		frames = int(p[1] & 0x3f)
		if frames == 0 {
			return 0, errors.New("code 3 packet with 0 frames")
		}
	}
	d := time.Duration(frames) * frame
	if d > 120*time.Millisecond {
		return 0, fmt.Errorf("packet of %s, over the 120 ms Opus allows", d)
	}
	return d, nil
}
