// Package phantom makes synthetic DICOM instances, as a CT phantom stands in for a
// patient: plausible 16-bit monochrome images with the attributes a PACS indexes, in
// any storable transfer syntax. The demo's simulated modality sends them to the box;
// tests, fuzz seeds and benchmarks use them as well.
package phantom

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"

	"lifeline/dicom"
)

// Spec describes one synthetic instance. Zero fields get defaults: a 16×16 CT image in
// explicit VR little endian.
type Spec struct {
	SOPClassUID       string
	SOPInstanceUID    string
	StudyUID          string
	SeriesUID         string
	PatientID         string
	PatientName       string
	Modality          string
	TransferSyntaxUID string
	Rows, Columns     int // of a 16-bit monochrome image; 0 means 16×16
	// Fill selects pixel values so that instances differ in content, not only in UIDs.
	Fill byte
	// DefinedLengths writes the sequence with an explicit length, as DCMTK's storescu
	// re-encodes it on the wire, so that what storescu sends equals the file.
	DefinedLengths bool
}

func (s *Spec) defaults() {
	if s.SOPClassUID == "" {
		s.SOPClassUID = dicom.CTImageStorage
	}
	if s.SOPInstanceUID == "" {
		s.SOPInstanceUID = "2.25.1001"
	}
	if s.StudyUID == "" {
		s.StudyUID = "2.25.1"
	}
	if s.SeriesUID == "" {
		s.SeriesUID = s.StudyUID + ".1"
	}
	if s.PatientID == "" {
		s.PatientID = "PAT001"
	}
	if s.PatientName == "" {
		s.PatientName = "Doe^Jane"
	}
	if s.Modality == "" {
		s.Modality = "CT"
	}
	if s.TransferSyntaxUID == "" {
		s.TransferSyntaxUID = dicom.ExplicitVRLittleEndian
	}
	if s.Rows == 0 {
		s.Rows = 16
	}
	if s.Columns == 0 {
		s.Columns = 16
	}
}

// Dataset returns the dataset bytes of s encoded in its transfer syntax. Compressed
// syntaxes get encapsulated pixel data whose single fragment is not a real codestream:
// the box never decodes pixel data, so only the encapsulation must be right.
func Dataset(s Spec) []byte {
	s.defaults()
	enc := dicom.EncodingOf(s.TransferSyntaxUID)
	native := enc.Implicit || enc.BigEndian || enc.Deflated || s.TransferSyntaxUID == dicom.ExplicitVRLittleEndian
	e := &encoder{enc: enc}
	if enc.BigEndian {
		e.bo = binary.BigEndian
	} else {
		e.bo = binary.LittleEndian
	}
	e.text(0x00080005, "CS", "ISO_IR 100")
	e.text(0x00080016, "UI", s.SOPClassUID)
	e.text(0x00080018, "UI", s.SOPInstanceUID)
	e.text(0x00080020, "DA", "20260101")
	e.text(0x00080060, "CS", s.Modality)
	// A sequence of undefined length with one item, as modalities write them, so that
	// every test exercises the walker's nesting.
	e.sequence(0x00081032, s.DefinedLengths, func() {
		e.text(0x00080100, "SH", "CTHEAD")
		e.text(0x00080102, "SH", "L")
	})
	e.text(0x00100010, "PN", latin1(s.PatientName))
	e.text(0x00100020, "LO", s.PatientID)
	e.text(0x0020000D, "UI", s.StudyUID)
	e.text(0x0020000E, "UI", s.SeriesUID)
	e.text(0x00200013, "IS", "1")
	e.us(0x00280002, 1)
	e.text(0x00280004, "CS", "MONOCHROME2")
	e.us(0x00280010, uint16(s.Rows))
	e.us(0x00280011, uint16(s.Columns))
	e.us(0x00280100, 16)
	e.us(0x00280101, 16)
	e.us(0x00280102, 15)
	e.us(0x00280103, 0)
	pix := make([]byte, s.Rows*s.Columns*2)
	for i := range pix {
		pix[i] = byte(i) ^ s.Fill
	}
	if native {
		if enc.BigEndian {
			for i := 0; i+1 < len(pix); i += 2 {
				pix[i], pix[i+1] = pix[i+1], pix[i]
			}
		}
		e.raw(0x7FE00010, "OW", pix)
	} else {
		e.encapsulated(0x7FE00010, pix)
	}
	out := e.b.Bytes()
	if enc.Deflated {
		var z bytes.Buffer
		fw, _ := flate.NewWriter(&z, flate.BestSpeed)
		fw.Write(out)
		fw.Close()
		out = z.Bytes()
	}
	return out
}

// File returns a whole Part 10 file for s.
func File(s Spec) []byte {
	s.defaults()
	meta := dicom.EncodeMeta(dicom.Meta{SOPClassUID: s.SOPClassUID, SOPInstanceUID: s.SOPInstanceUID,
		TransferSyntaxUID: s.TransferSyntaxUID})
	return append(meta, Dataset(s)...)
}

// UID returns a distinct UID for instance n (counted from 0) under root.
func UID(root string, n int) string { return fmt.Sprintf("%s.%d", root, n+1) }

type encoder struct {
	b   bytes.Buffer
	enc dicom.Encoding
	bo  binary.ByteOrder
}

func (e *encoder) header(tag uint32, vr string, length uint32) {
	var h [12]byte
	e.bo.PutUint16(h[0:], uint16(tag>>16))
	e.bo.PutUint16(h[2:], uint16(tag))
	if e.enc.Implicit || tag>>16 == 0xFFFE {
		e.bo.PutUint32(h[4:], length)
		e.b.Write(h[:8])
		return
	}
	h[4], h[5] = vr[0], vr[1]
	switch vr {
	case "OB", "OW", "SQ", "UN", "UT", "OF", "OD", "OL", "UC", "UR":
		e.bo.PutUint32(h[8:], length)
		e.b.Write(h[:12])
	default:
		e.bo.PutUint16(h[6:], uint16(length))
		e.b.Write(h[:8])
	}
}

func (e *encoder) raw(tag uint32, vr string, val []byte) {
	e.header(tag, vr, uint32(len(val)))
	e.b.Write(val)
}

func (e *encoder) text(tag uint32, vr, s string) {
	b := []byte(s)
	if len(b)%2 == 1 {
		if vr == "UI" {
			b = append(b, 0)
		} else {
			b = append(b, ' ')
		}
	}
	e.raw(tag, vr, b)
}

func (e *encoder) us(tag uint32, v uint16) {
	var b [2]byte
	e.bo.PutUint16(b[:], v)
	e.raw(tag, "US", b[:])
}

func (e *encoder) sequence(tag uint32, defined bool, item func()) {
	if !defined {
		e.header(tag, "SQ", 0xFFFFFFFF)
		e.header(0xFFFEE000, "", 0xFFFFFFFF)
		item()
		e.header(0xFFFEE00D, "", 0)
		e.header(0xFFFEE0DD, "", 0)
		return
	}
	outer := e.b
	e.b = bytes.Buffer{}
	item()
	body := e.b.Bytes()
	e.b = outer
	e.header(tag, "SQ", uint32(len(body)+8))
	e.header(0xFFFEE000, "", uint32(len(body)))
	e.b.Write(body)
}

func (e *encoder) encapsulated(tag uint32, frame []byte) {
	e.header(tag, "OB", 0xFFFFFFFF)
	e.header(0xFFFEE000, "", 0) // empty basic offset table
	e.header(0xFFFEE000, "", uint32(len(frame)))
	e.b.Write(frame)
	e.header(0xFFFEE0DD, "", 0)
}

// latin1 encodes s in ISO 8859-1, the character set the synthetic datasets declare.
func latin1(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			r = '?'
		}
		b = append(b, byte(r))
	}
	return string(b)
}
