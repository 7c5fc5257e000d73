package jt808

import (
	"bufio"
	"errors"
	"io"
)

// FrameReader cuts a byte stream into frames between 0x7E flags. Bytes outside a
// frame (line noise, a platform's banner) are skipped and counted; a frame that grows
// past MaxFrame is dropped and the reader resynchronises at the next flag, so a
// stranger cannot make it buffer without bound.
type FrameReader struct {
	r       *bufio.Reader
	buf     []byte
	Skipped int // bytes outside any frame
	Dropped int // frames dropped for length
}

// NewFrameReader reads frames from r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 4096)}
}

// Next returns the next non-empty frame without its flags (still escaped: pass it to
// Decode). It returns the reader's error (io.EOF at the end) when the stream ends.
func (f *FrameReader) Next() ([]byte, error) {
	inFrame := false
	for {
		b, err := f.r.ReadByte()
		if err != nil {
			if inFrame && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch {
		case b == flagByte && inFrame && len(f.buf) > 0:
			out := append([]byte(nil), f.buf...)
			f.buf = f.buf[:0]
			return out, nil
		case b == flagByte:
			// A start flag, or two flags back to back (one frame's end, the next's
			// start, as some platforms send).
			inFrame = true
			f.buf = f.buf[:0]
		case !inFrame:
			f.Skipped++
		case len(f.buf) >= MaxFrame:
			f.Dropped++
			f.buf = f.buf[:0]
			inFrame = false
		default:
			f.buf = append(f.buf, b)
		}
	}
}
