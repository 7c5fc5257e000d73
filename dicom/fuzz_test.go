package dicom_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"lifeline/dicom"
	"lifeline/dicom/phantom"
)

// fuzzSyntaxes are the encodings the intake must walk; the first input byte picks one.
var fuzzSyntaxes = []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian, dicom.ExplicitVRBigEndian,
	dicom.DeflatedExplicitVRLittleEndian, dicom.JPEG2000Lossless}

func intakeSeeds() [][]byte {
	var seeds [][]byte
	for i, ts := range fuzzSyntaxes {
		ds := phantom.Dataset(phantom.Spec{TransferSyntaxUID: ts, Rows: 2, Columns: 2})
		seeds = append(seeds, append([]byte{byte(i)}, ds...))
		if i == 0 {
			seeds = append(seeds, append([]byte{0}, ds[:len(ds)/2]...))
			seeds = append(seeds, append([]byte{0}, phantom.Dataset(phantom.Spec{Rows: 2, Columns: 2, DefinedLengths: true})...))
		}
	}
	return seeds
}

// FuzzReadInfo feeds arbitrary data sets to the intake's walker: it must never panic
// or loop, and whatever it accepts must have its SOP identity.
func FuzzReadInfo(f *testing.F) {
	for _, s := range intakeSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		ts := fuzzSyntaxes[int(data[0])%len(fuzzSyntaxes)]
		info, err := dicom.ReadInfo(bytes.NewReader(data[1:]), ts)
		if err != nil {
			if !dicom.EncodingOf(ts).Deflated && !errors.Is(err, dicom.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if info.SOPClassUID == "" || info.SOPInstanceUID == "" {
			t.Fatalf("accepted a data set without SOP identity: %+v", info)
		}
	})
}

// FuzzReadMeta feeds arbitrary files to the Part 10 header reader that `lifeline send`
// and crash recovery use.
func FuzzReadMeta(f *testing.F) {
	file := phantom.File(phantom.Spec{Rows: 2, Columns: 2})
	f.Add(file)
	f.Add(file[:140])
	f.Add([]byte("not a dicom file"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, off, err := dicom.ReadMeta(bufio.NewReader(bytes.NewReader(data)))
		if err == nil && (off > int64(len(data)) || m.TransferSyntaxUID == "") {
			t.Fatalf("accepted meta %+v ending at %d of %d bytes", m, off, len(data))
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpora under testdata/fuzz when
// LIFELINE_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("LIFELINE_WRITE_CORPUS") != "1" {
		t.Skip("set LIFELINE_WRITE_CORPUS=1 to rewrite testdata/fuzz")
	}
	file := phantom.File(phantom.Spec{Rows: 2, Columns: 2})
	WriteCorpus(t, "FuzzReadInfo", intakeSeeds())
	WriteCorpus(t, "FuzzReadMeta", [][]byte{file, file[:140], []byte("DICM")})
}

// WriteCorpus writes seeds in Go's fuzz corpus format.
func WriteCorpus(t *testing.T, name string, seeds [][]byte) {
	dir := filepath.Join("testdata", "fuzz", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
