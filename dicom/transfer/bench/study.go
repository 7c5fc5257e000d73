package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"

	"lifeline/dicom"
	"lifeline/dicom/pacs/pacstest"
)

// study is one generated study on disk: a folder of Part 10 files and what they hold.
type study struct {
	Name     string // e.g. "CT uncompressed"
	Short    string // e.g. "ct-raw", for tables and directories
	Dir      string
	StudyUID string
	Syntax   string
	Files    []string
	SOPs     []string          // SOP Instance UID of each file
	Bytes    int64             // sum of the Part 10 file sizes
	MD5      map[string]string // SOP Instance UID → MD5 of the data set (after the meta group)
	zstd     float64           // study bytes / bytes after zstd as the forwarder sends them
}

// sliceSize is the side of the generated CT slices: 512×512 16-bit, 512 KiB of pixels.
const sliceSize = 512

// makeUncompressedCT writes CT-like slices in explicit VR little endian until the
// study holds at least target bytes.
func makeUncompressedCT(dir string, target int64, seed uint64) (*study, error) {
	s := &study{Name: "CT uncompressed (explicit VR LE)", Short: "ct-raw", Dir: dir,
		StudyUID: fmt.Sprintf("2.25.%d%d", 4000+seed, 1771), Syntax: dicom.ExplicitVRLittleEndian, MD5: map[string]string{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0xc7))
	for i := 1; s.Bytes < target; i++ {
		path := filepath.Join(dir, fmt.Sprintf("ct%05d.dcm", i))
		if err := writeSlice(path, s.StudyUID, i, rng); err != nil {
			return nil, err
		}
		if err := s.add(path); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// makeJPEGCT writes CT-like slices and compresses each with DCMTK's dcmcjpeg
// (its default: JPEG lossless, process 14, first-order prediction) until the study
// holds at least target bytes of compressed files.
func makeJPEGCT(dir string, target int64, seed uint64, dcmcjpeg string) (*study, error) {
	s := &study{Name: "CT JPEG lossless (dcmcjpeg, process 14 SV1)", Short: "ct-jpeg", Dir: dir,
		StudyUID: fmt.Sprintf("2.25.%d%d", 5000+seed, 1771), Syntax: "1.2.840.10008.1.2.4.70", MD5: map[string]string{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x1fe9))
	raw := filepath.Join(dir, ".raw.dcm")
	defer os.Remove(raw)
	for i := 1; s.Bytes < target; i++ {
		if err := writeSlice(raw, s.StudyUID, i, rng); err != nil {
			return nil, err
		}
		path := filepath.Join(dir, fmt.Sprintf("cj%05d.dcm", i))
		if out, err := exec.Command(dcmcjpeg, raw, path).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dcmcjpeg %s: %v: %s", raw, err, out)
		}
		if err := s.add(path); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *study) add(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	info, _, err := dicom.ReadMeta(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if info.TransferSyntaxUID != s.Syntax {
		return fmt.Errorf("%s: transfer syntax %s, want %s", path, info.TransferSyntaxUID, s.Syntax)
	}
	md, err := pacstest.DatasetMD5(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	s.MD5[info.SOPInstanceUID] = md
	s.Files = append(s.Files, path)
	s.SOPs = append(s.SOPs, info.SOPInstanceUID)
	s.Bytes += int64(len(data))
	return nil
}

// writeSlice writes slice i of a synthetic chest CT: air with noise inside a round
// field of view (0 outside it, as scanners pad), an elliptic body of soft tissue with
// a fat rim, two lungs and a vertebra whose sizes change from slice to slice, and
// Gaussian quantum noise of σ = 12 HU everywhere inside the field of view. Values are
// stored as HU + 1024 in 12 bits. The noise is what makes real CT compress only
// about 2× losslessly; constant or smooth test images compress far better.
func writeSlice(path, studyUID string, i int, rng *rand.Rand) error {
	const n, half = sliceSize, sliceSize / 2
	z := float64(i)
	body := 1 + 0.08*math.Sin(z/23)
	lung := 0.6 + 0.4*math.Sin(z/17)
	pix := make([]byte, n*n*2)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			dx, dy := float64(x-half), float64(y-half)
			var hu float64
			switch {
			case dx*dx+dy*dy > 250*250:
				binary.LittleEndian.PutUint16(pix[2*(y*n+x):], 0)
				continue
			case inEllipse(dx, dy, 0, 120, 28, 24): // vertebra: cortex and marrow
				hu = 300
				if inEllipse(dx, dy, 0, 120, 20, 17) {
					hu = 180
				}
			case inEllipse(dx, dy, -85, -10, 62*lung, 85*lung) || inEllipse(dx, dy, 85, -10, 62*lung, 85*lung):
				hu = -850
			case inEllipse(dx, dy, 0, 0, 200*body*0.92, 145*body*0.92):
				hu = 40 + 15*math.Sin(dx/31)*math.Cos(dy/27) // organs differ a little
			case inEllipse(dx, dy, 0, 0, 200*body, 145*body):
				hu = -100
			default:
				hu = -1000
			}
			v := int(math.Round(hu + 1024 + rng.NormFloat64()*12))
			binary.LittleEndian.PutUint16(pix[2*(y*n+x):], uint16(min(max(v, 0), 4095)))
		}
	}
	data := pacstest.Part10(pacstest.Dataset{
		SOPClassUID: pacstest.CTImageStorage, SOPInstanceUID: fmt.Sprintf("%s.1.%d", studyUID, i),
		StudyUID: studyUID, SeriesUID: studyUID + ".1", Modality: "CT", PatientID: "BENCH-1",
		PatientName: "BENCH^FORWARD", InstanceNumber: i, Rows: n, Columns: n, Pixels: pix,
	})
	return os.WriteFile(path, data, 0o600)
}

func inEllipse(x, y, cx, cy, a, b float64) bool {
	x, y = (x-cx)/a, (y-cy)/b
	return x*x+y*y <= 1
}
