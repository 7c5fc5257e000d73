// Package datex speaks the GE Datex-Ohmeda S/5 Computer Interface (the "Datex Record
// Interface", DRI) over RS-232: 19200 baud, 8 data bits, even parity, 1 stop bit.
//
// On the wire every record travels in an asynchronous frame:
//
//	0x7E  record bytes (0x7E and 0x7D escaped as 0x7D, b^0x20)  checksum  0x7E
//
// The checksum is the sum modulo 256 of the unescaped record bytes; it is escaped like
// any other byte. A record is a 40-byte little-endian header (length, number, DRI level,
// plug id, monitor time, main type and eight subrecord descriptors) followed by up to
// eight subrecords: physiological data (displayed numerics, trends), waveform samples
// or alarm status. The box subscribes with request records and the monitor then sends
// on its own until told to stop.
//
// The package holds the framing, the record codec, the physiological, waveform and
// alarm subrecord layouts, the driver that maps them to Lifeline's vitals model, and a
// simulator that speaks the monitor's half.
package datex

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Frame delimiters of the asynchronous interface.
const (
	frameFlag = 0x7E
	ctrlEsc   = 0x7D
	escXOR    = 0x20
)

// MaxRecord is the largest record the decoder accepts. The S/5 never sends records
// above 1490 bytes (header plus 1450 data bytes); the margin lets a slightly larger
// record from a newer software level through while still bounding memory when the
// end flag is lost in line noise.
const MaxRecord = 4096

// Checksum returns the 8-bit sum of the unescaped record bytes.
func Checksum(rec []byte) byte {
	var s byte
	for _, b := range rec {
		s += b
	}
	return s
}

// AppendFrame appends the framed form of rec (flag, escaped record and checksum, flag)
// to dst and returns the extended slice.
func AppendFrame(dst, rec []byte) []byte {
	dst = append(dst, frameFlag)
	dst = appendEscaped(dst, rec...)
	dst = appendEscaped(dst, Checksum(rec))
	return append(dst, frameFlag)
}

// Frame returns rec framed for the wire.
func Frame(rec []byte) []byte { return AppendFrame(make([]byte, 0, len(rec)+8), rec) }

func appendEscaped(dst []byte, bs ...byte) []byte {
	for _, b := range bs {
		if b == frameFlag || b == ctrlEsc {
			dst = append(dst, ctrlEsc, b^escXOR)
			continue
		}
		dst = append(dst, b)
	}
	return dst
}

// FrameError describes a frame the reader dropped. The reader has already resynchronised
// on the next flag, so the caller counts it and reads on.
type FrameError struct {
	Reason string // "checksum", "too long", "bad escape", "too short"
	Len    int    // unescaped bytes collected
	Want   byte   // checksum carried by the frame (Reason "checksum")
	Got    byte   // checksum computed over the record (Reason "checksum")
}

func (e *FrameError) Error() string {
	if e.Reason == "checksum" {
		return fmt.Sprintf("datex: frame of %d bytes dropped: checksum 0x%02x, computed 0x%02x", e.Len, e.Want, e.Got)
	}
	return fmt.Sprintf("datex: frame of %d bytes dropped: %s", e.Len, e.Reason)
}

// IsFrameError reports whether err is a dropped frame (as opposed to an I/O error).
func IsFrameError(err error) bool {
	var fe *FrameError
	return errors.As(err, &fe)
}

// Deframer splits a byte stream into records. It keeps no goroutine: the caller feeds
// it whatever the port returned and gets complete records back.
type Deframer struct {
	buf     []byte
	inFrame bool
	esc     bool
	// Skipped counts bytes that arrived outside any frame (line noise, a partial frame
	// after the reader started mid-stream).
	Skipped uint64
}

// Feed consumes p. For every complete frame it calls rec with the unescaped record (the
// checksum removed; the slice is only valid during the call) or bad with the reason the
// frame was dropped.
func (d *Deframer) Feed(p []byte, rec func([]byte), bad func(*FrameError)) {
	for _, b := range p {
		if b == frameFlag {
			if d.inFrame && len(d.buf) > 0 {
				d.finish(rec, bad)
			}
			// A flag both ends one frame and may start the next: the S/5 sends
			// "7E … 7E 7E … 7E", and an empty pair is just an idle flag.
			d.inFrame = true
			d.buf = d.buf[:0]
			d.esc = false
			continue
		}
		if !d.inFrame {
			d.Skipped++
			continue
		}
		if d.esc {
			d.esc = false
			b ^= escXOR
		} else if b == ctrlEsc {
			d.esc = true
			continue
		}
		if len(d.buf) >= MaxRecord+1 {
			bad(&FrameError{Reason: "too long", Len: len(d.buf)})
			d.inFrame = false
			d.buf = d.buf[:0]
			continue
		}
		d.buf = append(d.buf, b)
	}
}

func (d *Deframer) finish(rec func([]byte), bad func(*FrameError)) {
	n := len(d.buf)
	if d.esc {
		bad(&FrameError{Reason: "bad escape", Len: n})
		return
	}
	if n < HeaderLen+1 {
		bad(&FrameError{Reason: "too short", Len: n})
		return
	}
	body, sum := d.buf[:n-1], d.buf[n-1]
	if got := Checksum(body); got != sum {
		bad(&FrameError{Reason: "checksum", Len: n, Want: sum, Got: got})
		return
	}
	rec(body)
}

// Reader reads records from a byte stream, one at a time.
type Reader struct {
	r       *bufio.Reader
	d       Deframer
	pending [][]byte
	errs    []*FrameError
	chunk   []byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 4096), chunk: make([]byte, 4096)}
}

// Skipped returns how many bytes arrived outside any frame so far.
func (r *Reader) Skipped() uint64 { return r.d.Skipped }

// ReadRecord returns the next record (without checksum). A dropped frame is returned
// as a *FrameError, after which the reader can be used again; any other error comes
// from the underlying reader.
func (r *Reader) ReadRecord() ([]byte, error) {
	for {
		if len(r.errs) > 0 {
			e := r.errs[0]
			r.errs = r.errs[1:]
			return nil, e
		}
		if len(r.pending) > 0 {
			rec := r.pending[0]
			r.pending = r.pending[1:]
			return rec, nil
		}
		n, err := r.r.Read(r.chunk)
		if n > 0 {
			r.d.Feed(r.chunk[:n],
				func(rec []byte) { r.pending = append(r.pending, append([]byte(nil), rec...)) },
				func(e *FrameError) {
					// Keep order simple: report drops before the records that followed
					// them in the same read; both are counted by the caller anyway.
					r.errs = append(r.errs, e)
				})
			continue
		}
		if err != nil {
			return nil, err
		}
	}
}
