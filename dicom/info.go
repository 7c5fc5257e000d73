package dicom

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Info is what the spool indexes about an instance, read from its dataset.
type Info struct {
	SOPClassUID    string
	SOPInstanceUID string
	StudyUID       string
	SeriesUID      string
	PatientID      string
	PatientName    string
	Modality       string
	DatasetLength  int64 // bytes of the dataset as walked (inflated for deflate)
}

// ReadInfo walks a whole dataset in transfer syntax ts, checking its structure, and
// returns the identifying attributes at its top level. An error wrapping ErrMalformed
// means the dataset does not parse.
func ReadInfo(r io.Reader, ts string) (Info, error) {
	var info Info
	var charset string
	var rawName []byte
	v := Visitor{
		Want: func(e Element) bool {
			if e.Depth != 0 {
				return false
			}
			switch e.Tag {
			case TagSpecificCharacterSet, TagSOPClassUID, TagSOPInstanceUID, TagModality,
				TagPatientName, TagPatientID, TagStudyInstanceUID, TagSeriesInstanceUID:
				return true
			}
			return false
		},
		Value: func(e Element, val []byte) {
			switch e.Tag {
			case TagSpecificCharacterSet:
				charset = trimValue(val)
			case TagSOPClassUID:
				info.SOPClassUID = trimUID(val)
			case TagSOPInstanceUID:
				info.SOPInstanceUID = trimUID(val)
			case TagModality:
				info.Modality = trimValue(val)
			case TagPatientName:
				rawName = val
			case TagPatientID:
				info.PatientID = decodeText(trimValueBytes(val), charset)
			case TagStudyInstanceUID:
				info.StudyUID = trimUID(val)
			case TagSeriesInstanceUID:
				info.SeriesUID = trimUID(val)
			}
		},
	}
	n, err := Walk(r, EncodingOf(ts), v)
	info.DatasetLength = n
	if err != nil {
		return info, err
	}
	info.PatientName = decodeText(trimValueBytes(rawName), charset)
	if info.SOPClassUID == "" || info.SOPInstanceUID == "" {
		return info, fmt.Errorf("%w: no SOP Class UID or SOP Instance UID at top level", ErrMalformed)
	}
	return info, nil
}

// trimUID removes the NUL or space padding of a UI value.
func trimUID(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }

func trimValueBytes(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return b
}

func trimValue(b []byte) string { return string(trimValueBytes(b)) }

// decodeText turns a text value into UTF-8. Latin-1 (ISO_IR 100) is decoded exactly,
// since clinics in many countries use it; other character sets keep their valid UTF-8
// and ASCII, and invalid bytes become U+FFFD so that the index stays valid JSON.
func decodeText(b []byte, charset string) string {
	if strings.Contains(charset, "ISO_IR 100") || strings.Contains(charset, "ISO 2022 IR 100") {
		var sb strings.Builder
		for _, c := range b {
			sb.WriteRune(rune(c))
		}
		return sb.String()
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
