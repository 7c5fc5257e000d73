package transfer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Meta is what the hub reads from a received file's File Meta Information (PS3.10
// §7.1) to check that the bytes are the instance the box declared.
type Meta struct {
	SOPClassUID    string
	SOPInstanceUID string
	TransferSyntax string
}

// maxMetaGroup bounds the File Meta Information; real ones are a few hundred bytes.
const maxMetaGroup = 64 << 10

// ReadMeta parses the preamble, the "DICM" prefix and the group 0002 elements (always
// explicit VR little endian) at the start of a Part 10 file.
func ReadMeta(r io.Reader) (Meta, error) {
	var head [132]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Meta{}, fmt.Errorf("part 10: preamble: %w", err)
	}
	if string(head[128:]) != "DICM" {
		return Meta{}, errors.New("part 10: no DICM prefix after the 128-byte preamble")
	}
	var m Meta
	first := true
	var remaining int64 = -1
	for {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if first {
				return Meta{}, fmt.Errorf("part 10: file meta information: %w", err)
			}
			break
		}
		group := binary.LittleEndian.Uint16(h[0:])
		elem := binary.LittleEndian.Uint16(h[2:])
		if group != 0x0002 {
			break // the data set begins; the caller stops reading here
		}
		vr := string(h[4:6])
		var length int64
		hdrLen := int64(8)
		switch vr {
		case "OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV", "SV", "UV":
			var l [4]byte
			if _, err := io.ReadFull(r, l[:]); err != nil {
				return Meta{}, fmt.Errorf("part 10: element (0002,%04X): %w", elem, err)
			}
			length, hdrLen = int64(binary.LittleEndian.Uint32(l[:])), 12
		default:
			if vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z' {
				return Meta{}, fmt.Errorf("part 10: element (0002,%04X) has no explicit VR", elem)
			}
			length = int64(binary.LittleEndian.Uint16(h[6:]))
		}
		if length > maxMetaGroup {
			return Meta{}, fmt.Errorf("part 10: element (0002,%04X) of %d bytes is too long", elem, length)
		}
		val := make([]byte, length)
		if _, err := io.ReadFull(r, val); err != nil {
			return Meta{}, fmt.Errorf("part 10: element (0002,%04X): %w", elem, err)
		}
		if first {
			first = false
			if elem == 0x0000 && length == 4 {
				remaining = int64(binary.LittleEndian.Uint32(val))
				if remaining > maxMetaGroup {
					return Meta{}, fmt.Errorf("part 10: file meta group length %d is too long", remaining)
				}
				continue
			}
		}
		switch elem {
		case 0x0002:
			m.SOPClassUID = uidValue(val)
		case 0x0003:
			m.SOPInstanceUID = uidValue(val)
		case 0x0010:
			m.TransferSyntax = uidValue(val)
		}
		if remaining >= 0 {
			remaining -= hdrLen + length
			if remaining <= 0 {
				break
			}
		}
	}
	if m.SOPInstanceUID == "" {
		return Meta{}, errors.New("part 10: file meta information has no Media Storage SOP Instance UID (0002,0003)")
	}
	if m.TransferSyntax == "" {
		return Meta{}, errors.New("part 10: file meta information has no Transfer Syntax UID (0002,0010)")
	}
	return m, nil
}

func uidValue(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }

// compressible reports whether instances in transfer syntax ts carry raw pixels,
// which zstd shrinks; encapsulated (JPEG, JPEG-LS, JPEG 2000, RLE) and deflated
// syntaxes are already compressed, and zstd would only burn CPU on them.
func compressible(ts string) bool {
	switch ts {
	case "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2":
		return true
	}
	return false
}
