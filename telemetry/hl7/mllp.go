// Package hl7 reads patient monitors that send HL7 v2 ORU^R01 observation reports in
// the IHE PCD-01 profile (Mindray, Comen, Edan and many others) over MLLP, on a serial
// line or a TCP socket, maps their OBX segments to the vitals model by MDC code, and
// answers with ACK when the monitor asks for it. It also writes such messages: for the
// monitor simulator and for exporting the box's record.
package hl7

import (
	"bytes"
	"errors"
)

// MLLP framing bytes (HL7 Minimal Lower Layer Protocol, release 2).
const (
	StartBlock = 0x0b // VT
	EndBlock   = 0x1c // FS
	CR         = 0x0d
)

// MaxMessage bounds one framed message; longer frames are discarded as garbage. The
// largest message a monitor sends is a 12-lead waveform ORU^R01: 1 s of 12 leads at
// 500 Hz is 40 kB with samples of four digits and 68 kB at full float32 precision
// (what the simulator writes), so 128 KiB holds either with room to spare. More only
// helps a stranger: a frame is held whole until it ends.
const MaxMessage = 128 << 10

// Frame wraps msg in MLLP framing.
func Frame(dst, msg []byte) []byte {
	dst = append(dst, StartBlock)
	dst = append(dst, msg...)
	return append(dst, EndBlock, CR)
}

// ErrOversized reports a frame longer than MaxMessage.
var ErrOversized = errors.New("mllp: frame exceeds maximum message size")

// Deframer extracts MLLP-framed messages from a byte stream. Bytes outside a frame
// (line noise, a monitor's stray newlines) are skipped and counted. Some monitors end a
// frame with FS alone, without the CR; the deframer accepts that.
type Deframer struct {
	Max     int // 0 means MaxMessage
	buf     []byte
	in      bool // inside a frame
	ended   bool // the last byte seen was a frame's FS: a CR may follow
	skipped int
}

// Feed appends p and returns the complete messages found (aliasing internal storage
// until the next Feed), and how many bytes were skipped, with an error when a frame was
// discarded for size.
func (d *Deframer) Feed(p []byte) (msgs [][]byte, skipped int, err error) {
	max := d.Max
	if max <= 0 {
		max = MaxMessage
	}
	d.skipped = 0
	if d.ended && len(p) > 0 && p[0] == CR {
		p = p[1:]
	}
	d.ended = false
	for len(p) > 0 {
		if !d.in {
			i := bytes.IndexByte(p, StartBlock)
			if i < 0 {
				d.skipped += len(p)
				break
			}
			d.skipped += i
			p = p[i+1:]
			d.in = true
			d.buf = d.buf[:0]
			continue
		}
		i := bytes.IndexAny(p, "\x1c\x0b")
		if i < 0 {
			d.buf = append(d.buf, p...)
			p = nil
		} else {
			d.buf = append(d.buf, p[:i]...)
			if p[i] == StartBlock {
				// A new frame began before this one ended: the earlier one was cut off.
				d.skipped += len(d.buf) + 1
				d.buf = d.buf[:0]
				p = p[i+1:]
				continue
			}
			if len(d.buf) > max {
				// The frame ended in this chunk but is over the limit all the same.
				d.skipped += len(d.buf) + 2
				d.buf = d.buf[:0]
				err = ErrOversized
			} else {
				msgs = append(msgs, append([]byte(nil), d.buf...))
			}
			d.in = false
			p = p[i+1:]
			if len(p) == 0 {
				d.ended = true
			} else if p[0] == CR {
				p = p[1:]
			}
		}
		if len(d.buf) > max {
			d.skipped += len(d.buf) + 1
			d.buf = d.buf[:0]
			d.in = false
			err = ErrOversized
		}
	}
	return msgs, d.skipped, err
}
