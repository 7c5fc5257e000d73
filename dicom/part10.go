package dicom

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Meta is the File Meta Information of a Part 10 file (PS3.10 7.1).
type Meta struct {
	SOPClassUID               string // (0002,0002) Media Storage SOP Class UID
	SOPInstanceUID            string // (0002,0003) Media Storage SOP Instance UID
	TransferSyntaxUID         string // (0002,0010)
	ImplementationClassUID    string // (0002,0012)
	ImplementationVersionName string // (0002,0013)
	SourceAETitle             string // (0002,0016)
}

// ErrNotDICOM is returned by ReadMeta for input that is not a Part 10 file.
var ErrNotDICOM = errors.New("not a DICOM Part 10 file")

// maxMeta bounds the File Meta Information group; real ones are a few hundred bytes.
const maxMeta = 64 << 10

// EncodeMeta returns the 128-byte preamble, "DICM" and the File Meta group for m,
// with Lifeline's implementation class UID and version name when m has none.
func EncodeMeta(m Meta) []byte {
	if m.ImplementationClassUID == "" {
		m.ImplementationClassUID = ImplementationClassUID
		m.ImplementationVersionName = ImplementationVersionName
	}
	var g bytes.Buffer
	putExplicit(&g, 0x00020001, "OB", []byte{0, 1})
	putExplicit(&g, 0x00020002, "UI", padUID(m.SOPClassUID))
	putExplicit(&g, 0x00020003, "UI", padUID(m.SOPInstanceUID))
	putExplicit(&g, 0x00020010, "UI", padUID(m.TransferSyntaxUID))
	putExplicit(&g, 0x00020012, "UI", padUID(m.ImplementationClassUID))
	if m.ImplementationVersionName != "" {
		putExplicit(&g, 0x00020013, "SH", padText(m.ImplementationVersionName))
	}
	if m.SourceAETitle != "" {
		putExplicit(&g, 0x00020016, "AE", padText(m.SourceAETitle))
	}
	out := make([]byte, 128, 128+4+12+g.Len())
	out = append(out, "DICM"...)
	var gl bytes.Buffer
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(g.Len()))
	putExplicit(&gl, 0x00020000, "UL", n[:])
	out = append(out, gl.Bytes()...)
	return append(out, g.Bytes()...)
}

// putExplicit appends one explicit VR little endian element.
func putExplicit(b *bytes.Buffer, tag Tag, vr string, val []byte) {
	var h [12]byte
	binary.LittleEndian.PutUint16(h[0:], uint16(tag>>16))
	binary.LittleEndian.PutUint16(h[2:], uint16(tag))
	h[4], h[5] = vr[0], vr[1]
	if longVR(vr) {
		binary.LittleEndian.PutUint32(h[8:], uint32(len(val)))
		b.Write(h[:12])
	} else {
		binary.LittleEndian.PutUint16(h[6:], uint16(len(val)))
		b.Write(h[:8])
	}
	b.Write(val)
}

func padUID(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func padText(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, ' ')
	}
	return b
}

// ReadMeta reads the preamble and File Meta Information from r and returns it with
// the number of bytes it consumed; the dataset starts right after. r must be
// positioned at the start of the file.
func ReadMeta(r *bufio.Reader) (Meta, int64, error) {
	var m Meta
	head := make([]byte, 132)
	if _, err := io.ReadFull(r, head); err != nil {
		return m, 0, fmt.Errorf("%w: shorter than the 132-byte preamble", ErrNotDICOM)
	}
	if string(head[128:]) != "DICM" {
		return m, 0, fmt.Errorf("%w: no \"DICM\" prefix at byte 128", ErrNotDICOM)
	}
	pos := int64(132)
	for {
		peek, err := r.Peek(2)
		if err != nil || binary.LittleEndian.Uint16(peek) != 0x0002 {
			break
		}
		if pos-132 > maxMeta {
			return m, pos, fmt.Errorf("%w: File Meta Information longer than %d bytes", ErrNotDICOM, maxMeta)
		}
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return m, pos, fmt.Errorf("%w: truncated File Meta Information", ErrNotDICOM)
		}
		pos += 8
		tag := NewTag(binary.LittleEndian.Uint16(h[0:]), binary.LittleEndian.Uint16(h[2:]))
		if !validVR(h[4], h[5]) {
			return m, pos, fmt.Errorf("%w: File Meta element %s has invalid VR", ErrNotDICOM, tag)
		}
		vr := string(h[4:6])
		length := uint32(binary.LittleEndian.Uint16(h[6:]))
		if longVR(vr) {
			var l [4]byte
			if _, err := io.ReadFull(r, l[:]); err != nil {
				return m, pos, fmt.Errorf("%w: truncated File Meta Information", ErrNotDICOM)
			}
			pos += 4
			length = binary.LittleEndian.Uint32(l[:])
		}
		if length > maxMeta {
			return m, pos, fmt.Errorf("%w: File Meta element %s of %d bytes", ErrNotDICOM, tag, length)
		}
		val := make([]byte, length)
		if _, err := io.ReadFull(r, val); err != nil {
			return m, pos, fmt.Errorf("%w: truncated File Meta Information", ErrNotDICOM)
		}
		pos += int64(length)
		switch tag {
		case 0x00020002:
			m.SOPClassUID = trimUID(val)
		case 0x00020003:
			m.SOPInstanceUID = trimUID(val)
		case 0x00020010:
			m.TransferSyntaxUID = trimUID(val)
		case 0x00020012:
			m.ImplementationClassUID = trimUID(val)
		case 0x00020013:
			m.ImplementationVersionName = trimValue(val)
		case 0x00020016:
			m.SourceAETitle = trimValue(val)
		}
	}
	if m.TransferSyntaxUID == "" {
		return m, pos, fmt.Errorf("%w: File Meta Information has no Transfer Syntax UID", ErrNotDICOM)
	}
	return m, pos, nil
}

// File is a Part 10 file on disk, located but not read: its meta information and
// where its data set lies.
type File struct {
	Path          string
	Meta          Meta
	DatasetOffset int64
	DatasetSize   int64
}

// OpenFile reads the File Meta Information of the Part 10 file at path.
func OpenFile(path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return File{}, err
	}
	m, off, err := ReadMeta(bufio.NewReaderSize(f, 4096))
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	if m.SOPClassUID == "" || m.SOPInstanceUID == "" {
		return File{}, fmt.Errorf("%s: %w: File Meta Information lacks the SOP Class or Instance UID", path, ErrNotDICOM)
	}
	return File{Path: path, Meta: m, DatasetOffset: off, DatasetSize: st.Size() - off}, nil
}
