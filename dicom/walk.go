package dicom

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Tag is a DICOM attribute tag, group in the high 16 bits.
type Tag uint32

// NewTag builds a tag from its group and element.
func NewTag(group, element uint16) Tag { return Tag(uint32(group)<<16 | uint32(element)) }

// Group returns the tag's group number.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", uint16(t>>16), uint16(t)) }

// Tags the walker and the File Meta code care about.
const (
	TagSpecificCharacterSet Tag = 0x00080005
	TagSOPClassUID          Tag = 0x00080016
	TagSOPInstanceUID       Tag = 0x00080018
	TagModality             Tag = 0x00080060
	TagPatientName          Tag = 0x00100010
	TagPatientID            Tag = 0x00100020
	TagStudyInstanceUID     Tag = 0x0020000D
	TagSeriesInstanceUID    Tag = 0x0020000E
	TagPixelData            Tag = 0x7FE00010
	TagItem                 Tag = 0xFFFEE000
	TagItemDelimitation     Tag = 0xFFFEE00D
	TagSequenceDelimitation Tag = 0xFFFEE0DD
	TagDirectoryRecordSeq   Tag = 0x00041220
	TagReferencedFileID     Tag = 0x00041500
)

const undefinedLength = 0xFFFFFFFF

// maxDepth bounds sequence nesting so that hostile input cannot exhaust the stack.
const maxDepth = 32

// maxValue bounds the values the walker reads into memory; everything else is skipped.
const maxValue = 1 << 16

// ErrMalformed wraps every structural error the walker finds.
var ErrMalformed = errors.New("malformed dataset")

// Element is one element header the walker met. Depth is 0 at the top level and grows
// by one inside each sequence item.
type Element struct {
	Tag    Tag
	VR     string // empty in implicit VR datasets
	Length uint32
	Depth  int
	Offset int64 // of the element's header from the start of the dataset
}

// Visitor is called for every element. If it returns true and the value is at most
// 64 KiB long, the walker reads the value and passes it to Value.
type Visitor struct {
	Want  func(e Element) bool
	Value func(e Element, value []byte)
}

// Walk reads a whole dataset encoded as enc from r, checking its structure to the end:
// every length must fit, every sequence and item must be closed. It returns the
// number of bytes of the (inflated, for deflate) dataset.
func Walk(r io.Reader, enc Encoding, v Visitor) (int64, error) {
	if enc.Deflated {
		fr := flate.NewReader(r)
		defer fr.Close()
		r = fr
	}
	w := &walker{r: bufio.NewReaderSize(r, 32<<10), enc: enc, v: v}
	if enc.BigEndian {
		w.bo = binary.BigEndian
	} else {
		w.bo = binary.LittleEndian
	}
	err := w.elements(0, -1, false)
	if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return w.pos, err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return w.pos, fmt.Errorf("%w: truncated at byte %d", ErrMalformed, w.pos)
	}
	return w.pos, err
}

type walker struct {
	r   *bufio.Reader
	enc Encoding
	bo  binary.ByteOrder
	v   Visitor
	pos int64
	buf [12]byte
}

func (w *walker) read(n int) ([]byte, error) {
	b := w.buf[:n]
	if _, err := io.ReadFull(w.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	w.pos += int64(n)
	return b, nil
}

func (w *walker) skip(n int64) error {
	for n > 0 {
		chunk := n
		if chunk > 1<<30 {
			chunk = 1 << 30
		}
		d, err := w.r.Discard(int(chunk))
		w.pos += int64(d)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		n -= chunk
	}
	return nil
}

func (w *walker) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s at byte %d", ErrMalformed, fmt.Sprintf(format, args...), w.pos)
}

// longVR reports the explicit VRs that have a 4-byte length after two reserved bytes.
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

func validVR(a, b byte) bool { return a >= 'A' && a <= 'Z' && b >= 'A' && b <= 'Z' }

// header reads one element header. Item and delimitation tags never carry a VR.
func (w *walker) header(implicit bool) (Element, error) {
	start := w.pos
	b, err := w.read(4)
	if err != nil {
		return Element{}, err
	}
	tag := NewTag(w.bo.Uint16(b[0:2]), w.bo.Uint16(b[2:4]))
	e := Element{Tag: tag, Offset: start}
	if tag.Group() == 0xFFFE || implicit {
		// Items and delimiters are always little/big endian per the syntax with a
		// 4-byte length and no VR.
		b, err = w.read(4)
		if err != nil {
			return e, err
		}
		e.Length = w.bo.Uint32(b)
		return e, nil
	}
	b, err = w.read(2)
	if err != nil {
		return e, err
	}
	if !validVR(b[0], b[1]) {
		return e, w.malformed("element %s has invalid VR bytes %q", tag, b)
	}
	e.VR = string(b)
	if longVR(e.VR) {
		b, err = w.read(6)
		if err != nil {
			return e, err
		}
		e.Length = w.bo.Uint32(b[2:6])
		return e, nil
	}
	b, err = w.read(2)
	if err != nil {
		return e, err
	}
	e.Length = uint32(w.bo.Uint16(b))
	return e, nil
}

// elements reads elements at depth until limit bytes are consumed (limit >= 0), an
// item delimiter (inItem with undefined length), or the end of the input (depth 0).
func (w *walker) elements(depth int, limit int64, undefinedItem bool) error {
	if depth > maxDepth {
		return w.malformed("sequences nested deeper than %d", maxDepth)
	}
	end := int64(-1)
	if limit >= 0 {
		end = w.pos + limit
	}
	for {
		if end >= 0 && w.pos == end {
			return nil
		}
		if end >= 0 && w.pos > end {
			return w.malformed("element overruns its item by %d bytes", w.pos-end)
		}
		if depth == 0 && end < 0 {
			if _, err := w.r.Peek(1); err == io.EOF {
				return nil
			}
		}
		e, err := w.header(w.enc.Implicit)
		if err != nil {
			return err
		}
		e.Depth = depth
		switch e.Tag {
		case TagItemDelimitation:
			if !undefinedItem {
				return w.malformed("item delimiter outside an item of undefined length")
			}
			return nil
		case TagItem, TagSequenceDelimitation:
			return w.malformed("unexpected %s in element list", e.Tag)
		}
		if err := w.value(e); err != nil {
			return err
		}
	}
}

// value consumes the value of e, descending into sequences and encapsulated data.
func (w *walker) value(e Element) error {
	isSeq := e.VR == "SQ" || (e.Length == undefinedLength && (e.VR == "" || e.VR == "UN") && e.Tag != TagPixelData)
	if e.Length == undefinedLength {
		if e.Tag == TagPixelData || (e.VR == "OB" || e.VR == "OW") {
			return w.fragments(e)
		}
		if !isSeq {
			return w.malformed("element %s (%s) has undefined length", e.Tag, e.VR)
		}
		return w.sequence(e, -1)
	}
	if isSeq {
		return w.sequence(e, int64(e.Length))
	}
	if w.v.Want != nil && e.Length <= maxValue && w.v.Want(e) {
		val := make([]byte, e.Length)
		if _, err := io.ReadFull(w.r, val); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		w.pos += int64(e.Length)
		if w.v.Value != nil {
			w.v.Value(e, val)
		}
		return nil
	}
	return w.skip(int64(e.Length))
}

// sequence reads the items of a sequence of the given length (-1: undefined). Items
// of a sequence whose VR is UN with undefined length are implicit VR (PS3.5 6.2.2).
func (w *walker) sequence(e Element, length int64) error {
	saved := w.enc.Implicit
	if e.VR == "UN" {
		w.enc.Implicit = true
	}
	defer func() { w.enc.Implicit = saved }()
	end := int64(-1)
	if length >= 0 {
		end = w.pos + length
	}
	for {
		if end >= 0 {
			if w.pos == end {
				return nil
			}
			if w.pos > end {
				return w.malformed("sequence %s overruns its length", e.Tag)
			}
		}
		it, err := w.header(true)
		if err != nil {
			return err
		}
		switch it.Tag {
		case TagSequenceDelimitation:
			if end >= 0 {
				return w.malformed("sequence delimiter in sequence %s of defined length", e.Tag)
			}
			return nil
		case TagItem:
		default:
			return w.malformed("%s inside sequence %s where an item was expected", it.Tag, e.Tag)
		}
		if it.Length == undefinedLength {
			if err := w.elements(e.Depth+1, -1, true); err != nil {
				return err
			}
		} else {
			if end >= 0 && w.pos+int64(it.Length) > end {
				return w.malformed("item of %d bytes overruns sequence %s", it.Length, e.Tag)
			}
			if err := w.elements(e.Depth+1, int64(it.Length), false); err != nil {
				return err
			}
		}
	}
}

// fragments skips encapsulated pixel data: items of defined length up to a sequence
// delimiter (PS3.5 A.4).
func (w *walker) fragments(e Element) error {
	for {
		it, err := w.header(true)
		if err != nil {
			return err
		}
		switch it.Tag {
		case TagSequenceDelimitation:
			return nil
		case TagItem:
			if it.Length == undefinedLength {
				return w.malformed("pixel data fragment of undefined length in %s", e.Tag)
			}
			if err := w.skip(int64(it.Length)); err != nil {
				return err
			}
		default:
			return w.malformed("%s inside encapsulated %s", it.Tag, e.Tag)
		}
	}
}
