package sfu

// H.264 NAL unit types the fan-out looks for (ITU-T H.264 table 7-1, RFC 6184 §5.2).
const (
	nalIDR   = 5
	nalSPS   = 7
	nalPPS   = 8
	nalSTAPA = 24
	nalFUA   = 28
)

// h264Payload is what the fan-out needs to know about one RTP payload of H.264
// (RFC 6184): whether it starts or carries an IDR picture, and the SPS/PPS it carries
// so that they can be given to a decoder that joins later.
type h264Payload struct {
	idr      bool   // carries (the start of) an IDR slice
	sps, pps []byte // parameter sets carried whole in this packet, if any
}

// parseH264Payload inspects one RTP payload in packetization mode 0 or 1: a single NAL
// unit, a STAP-A aggregate or an FU-A fragment. It never fails: a malformed payload
// (truncated aggregate, unknown type) simply carries nothing of interest, and the
// receiver's decoder is the judge of the media itself.
func parseH264Payload(payload []byte) h264Payload {
	var p h264Payload
	if len(payload) < 1 {
		return p
	}
	switch t := payload[0] & 0x1f; t {
	case nalSTAPA:
		rest := payload[1:]
		for len(rest) >= 2 {
			n := int(rest[0])<<8 | int(rest[1])
			rest = rest[2:]
			if n == 0 || n > len(rest) {
				break
			}
			p.noteNAL(rest[:n])
			rest = rest[n:]
		}
	case nalFUA:
		// An FU-A fragment: the header's start bit marks the first fragment, which is
		// where a picture begins.
		if len(payload) >= 2 && payload[1]&0x80 != 0 && payload[1]&0x1f == nalIDR {
			p.idr = true
		}
	default:
		p.noteNAL(payload)
	}
	return p
}

// noteNAL records one whole NAL unit.
func (p *h264Payload) noteNAL(nal []byte) {
	switch nal[0] & 0x1f {
	case nalIDR:
		p.idr = true
	case nalSPS:
		p.sps = nal
	case nalPPS:
		p.pps = nal
	}
}

// stapA builds a STAP-A payload aggregating the given NAL units, to hand SPS and PPS
// to a joining decoder when the camera sent them only once, long ago.
func stapA(nals ...[]byte) []byte {
	size, nri := 1, byte(0)
	for _, n := range nals {
		size += 2 + len(n)
		if n[0]&0x60 > nri {
			nri = n[0] & 0x60
		}
	}
	out := make([]byte, 0, size)
	out = append(out, nri|nalSTAPA)
	for _, n := range nals {
		out = append(out, byte(len(n)>>8), byte(len(n)))
		out = append(out, n...)
	}
	return out
}
