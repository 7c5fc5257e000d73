// Package pacstest gives tests of PACS delivery and study forwarding what they need
// from the outside world: synthetic but valid DICOM Part 10 instances, and a real
// Orthanc started on loopback with its own throw-away configuration and storage.
package pacstest

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// CTImageStorage is the SOP class of the synthetic instances; every PACS accepts it.
const CTImageStorage = "1.2.840.10008.5.1.4.1.1.2"

// ExplicitVRLittleEndian is the transfer syntax of the synthetic instances.
const ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"

// Instance is one synthetic Part 10 file written by WriteStudy.
type Instance struct {
	SOPInstanceUID string
	SeriesUID      string
	StudyUID       string
	Path           string
	Size           int64
	SHA256         string // hex of the whole file
	MD5            string // hex of the whole file
	DatasetMD5     string // hex of the data set after the File Meta Information
}

// StudySpec describes a synthetic study. Rows×Columns 16-bit pixels make each
// instance's size; Seed makes the pixel noise (and so the content) reproducible.
type StudySpec struct {
	StudyUID  string
	PatientID string
	Modality  string
	Instances int
	Rows      int
	Columns   int
	Seed      uint64
}

// WriteStudy writes spec.Instances Part 10 files into dir and describes them.
func WriteStudy(dir string, spec StudySpec) ([]Instance, error) {
	if spec.Modality == "" {
		spec.Modality = "CT"
	}
	if spec.PatientID == "" {
		spec.PatientID = "TEST-" + strconv.FormatUint(spec.Seed, 10)
	}
	if spec.Rows == 0 {
		spec.Rows, spec.Columns = 64, 64
	}
	series := spec.StudyUID + ".1"
	rng := rand.New(rand.NewPCG(spec.Seed, 0x11fe11e))
	var out []Instance
	for i := 1; i <= spec.Instances; i++ {
		sop := fmt.Sprintf("%s.1.%d", spec.StudyUID, i)
		data := Part10(Dataset{
			SOPClassUID: CTImageStorage, SOPInstanceUID: sop, StudyUID: spec.StudyUID,
			SeriesUID: series, Modality: spec.Modality, PatientID: spec.PatientID,
			PatientName: "TEST^PATIENT", InstanceNumber: i,
			Rows: spec.Rows, Columns: spec.Columns, Pixels: pixels(rng, spec.Rows, spec.Columns),
		})
		path := filepath.Join(dir, sop+".dcm")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
		inst, err := Describe(path)
		if err != nil {
			return nil, err
		}
		inst.SOPInstanceUID, inst.SeriesUID, inst.StudyUID = sop, series, spec.StudyUID
		out = append(out, inst)
	}
	return out, nil
}

// pixels makes 12-bit pixel values: a smooth gradient plus a little noise, like a
// CT slice, so that lossless compression does about as well as on real images.
func pixels(rng *rand.Rand, rows, cols int) []byte {
	b := make([]byte, rows*cols*2)
	for y := 0; y < rows; y++ {
		for x := 0; x < cols; x++ {
			v := uint16((x*7+y*5)%2048) + uint16(rng.IntN(16))
			binary.LittleEndian.PutUint16(b[2*(y*cols+x):], v&0x0fff)
		}
	}
	return b
}

// Describe reads a Part 10 file and returns its size and digests.
func Describe(path string) (Instance, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Instance{}, err
	}
	sum := sha256.Sum256(data)
	m := md5.Sum(data)
	ds, err := DatasetMD5(data)
	if err != nil {
		return Instance{}, fmt.Errorf("%s: %w", path, err)
	}
	return Instance{Path: path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		MD5: hex.EncodeToString(m[:]), DatasetMD5: ds}, nil
}

// DatasetMD5 returns the MD5 of the data set that follows the File Meta Information
// of a Part 10 file. A PACS that received an instance by C-STORE writes its own meta
// header, so "the same instance" means the same data set bytes.
func DatasetMD5(file []byte) (string, error) {
	if len(file) < 132+12 || string(file[128:132]) != "DICM" {
		return "", errors.New("not a DICOM Part 10 file (no DICM prefix)")
	}
	// (0002,0000) UL is the first element: 4 tag + 2 VR + 2 length + 4 value.
	if binary.LittleEndian.Uint16(file[132:]) != 0x0002 || binary.LittleEndian.Uint16(file[134:]) != 0x0000 {
		return "", errors.New("file meta information does not start with (0002,0000)")
	}
	end := 144 + int(binary.LittleEndian.Uint32(file[140:]))
	if end > len(file) {
		return "", errors.New("file meta group length runs past the end of the file")
	}
	m := md5.Sum(file[end:])
	return hex.EncodeToString(m[:]), nil
}

// Dataset holds the attributes Part10 writes.
type Dataset struct {
	SOPClassUID, SOPInstanceUID, StudyUID, SeriesUID string
	Modality, PatientID, PatientName                 string
	InstanceNumber, Rows, Columns                    int
	Pixels                                           []byte
}

// Part10 encodes d as a Part 10 file in explicit VR little endian.
func Part10(d Dataset) []byte {
	var meta, body bytes.Buffer
	element(&meta, 0x0002, 0x0001, "OB", []byte{0, 1})
	element(&meta, 0x0002, 0x0002, "UI", uid(d.SOPClassUID))
	element(&meta, 0x0002, 0x0003, "UI", uid(d.SOPInstanceUID))
	element(&meta, 0x0002, 0x0010, "UI", uid(ExplicitVRLittleEndian))
	element(&meta, 0x0002, 0x0012, "UI", uid("1.2.826.0.1.3680043.10.1311.1"))

	element(&body, 0x0008, 0x0016, "UI", uid(d.SOPClassUID))
	element(&body, 0x0008, 0x0018, "UI", uid(d.SOPInstanceUID))
	element(&body, 0x0008, 0x0020, "DA", text("20260101"))
	element(&body, 0x0008, 0x0060, "CS", text(d.Modality))
	element(&body, 0x0010, 0x0010, "PN", text(d.PatientName))
	element(&body, 0x0010, 0x0020, "LO", text(d.PatientID))
	element(&body, 0x0020, 0x000D, "UI", uid(d.StudyUID))
	element(&body, 0x0020, 0x000E, "UI", uid(d.SeriesUID))
	element(&body, 0x0020, 0x0013, "IS", text(strconv.Itoa(d.InstanceNumber)))
	element(&body, 0x0028, 0x0002, "US", u16(1))
	element(&body, 0x0028, 0x0004, "CS", text("MONOCHROME2"))
	element(&body, 0x0028, 0x0010, "US", u16(d.Rows))
	element(&body, 0x0028, 0x0011, "US", u16(d.Columns))
	element(&body, 0x0028, 0x0100, "US", u16(16))
	element(&body, 0x0028, 0x0101, "US", u16(12))
	element(&body, 0x0028, 0x0102, "US", u16(11))
	element(&body, 0x0028, 0x0103, "US", u16(0))
	element(&body, 0x7FE0, 0x0010, "OW", d.Pixels)

	var out bytes.Buffer
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	element(&out, 0x0002, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(meta.Len())))
	out.Write(meta.Bytes())
	out.Write(body.Bytes())
	return out.Bytes()
}

func element(w *bytes.Buffer, group, elem uint16, vr string, value []byte) {
	var h [12]byte
	binary.LittleEndian.PutUint16(h[0:], group)
	binary.LittleEndian.PutUint16(h[2:], elem)
	copy(h[4:], vr)
	switch vr {
	case "OB", "OW", "SQ", "UN", "UT":
		binary.LittleEndian.PutUint32(h[8:], uint32(len(value)))
		w.Write(h[:12])
	default:
		binary.LittleEndian.PutUint16(h[6:], uint16(len(value)))
		w.Write(h[:8])
	}
	w.Write(value)
}

func uid(s string) []byte {
	if len(s)%2 == 1 {
		return append([]byte(s), 0)
	}
	return []byte(s)
}

func text(s string) []byte {
	if len(s)%2 == 1 {
		return append([]byte(s), ' ')
	}
	return []byte(s)
}

func u16(v int) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(v)) }
