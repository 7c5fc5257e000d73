package dicom_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"lifeline/dicom"
	"lifeline/dicom/phantom"
	"lifeline/internal/peers"
)

func TestReadInfoEveryTransferSyntax(t *testing.T) {
	for _, ts := range dicom.StorableTransferSyntaxes {
		spec := phantom.Spec{TransferSyntaxUID: ts, SOPInstanceUID: "2.25.77", StudyUID: "2.25.5", PatientName: "Müller^Anna"}
		file := phantom.File(spec)
		m, off, err := dicom.ReadMeta(bufio.NewReader(bytes.NewReader(file)))
		if err != nil {
			t.Fatalf("%s: ReadMeta: %v", ts, err)
		}
		if m.TransferSyntaxUID != ts || m.SOPInstanceUID != "2.25.77" {
			t.Fatalf("%s: meta %+v", ts, m)
		}
		info, err := dicom.ReadInfo(bytes.NewReader(file[off:]), ts)
		if err != nil {
			t.Fatalf("%s: ReadInfo: %v", ts, err)
		}
		if info.StudyUID != "2.25.5" || info.SOPClassUID != dicom.CTImageStorage || info.PatientName != "Müller^Anna" || info.Modality != "CT" {
			t.Fatalf("%s: info %+v", ts, info)
		}
	}
}

// TestSyntheticFilesParseWithDCMTK proves dicomtest's encoder against an independent
// parser, so that the walker is not only checked against itself.
func TestSyntheticFilesParseWithDCMTK(t *testing.T) {
	dcmdump := peers.Need(t, "dcmdump")[0]
	dir := t.TempDir()
	for i, ts := range dicom.StorableTransferSyntaxes {
		p := filepath.Join(dir, "f"+string(rune('a'+i))+".dcm")
		if err := os.WriteFile(p, phantom.File(phantom.Spec{TransferSyntaxUID: ts, PatientID: "PID42"}), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(dcmdump, "-q", "+E", p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "PID42") {
			t.Fatalf("dcmdump rejects synthetic %s file: %v\n%s", ts, err, out)
		}
	}
}

func TestWalkRejectsBrokenStructure(t *testing.T) {
	good := phantom.Dataset(phantom.Spec{})
	cases := map[string][]byte{
		"truncated":      good[:len(good)-7],
		"garbage":        []byte("this is not a dataset at all, just text"),
		"huge length":    append(append([]byte{}, good[:40]...), 0x08, 0x00, 0x30, 0x00, 'O', 'B', 0, 0, 0xff, 0xff, 0xff, 0x7f),
		"lone delimiter": {0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0},
		"empty":          {},
	}
	for name, b := range cases {
		_, err := dicom.ReadInfo(bytes.NewReader(b), dicom.ExplicitVRLittleEndian)
		if !errors.Is(err, dicom.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestValidUID(t *testing.T) {
	for s, want := range map[string]bool{"1.2.840.10008.1.2": true, "2.25.0": true, "1.02": false, "1..2": false, "../x": false, "": false, "1.2.": false} {
		if dicom.ValidUID(s) != want {
			t.Errorf("ValidUID(%q) != %v", s, want)
		}
	}
}
