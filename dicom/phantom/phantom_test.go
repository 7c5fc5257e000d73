package phantom

import (
	"bufio"
	"bytes"
	"testing"

	"lifeline/dicom"
)

// TestFileParsesInEveryStorableSyntax reads each phantom back with the box's own
// Part 10 and dataset readers: what the demo's modality sends must be what a modality
// would, in every transfer syntax the box stores.
func TestFileParsesInEveryStorableSyntax(t *testing.T) {
	for _, ts := range dicom.StorableTransferSyntaxes {
		spec := Spec{SOPInstanceUID: UID("2.25.77", 3), StudyUID: "2.25.77", PatientID: "PH-1",
			PatientName: "Phantom^Héad", Modality: "CT", TransferSyntaxUID: ts, Rows: 32, Columns: 24, Fill: 7}
		r := bufio.NewReader(bytes.NewReader(File(spec)))
		meta, _, err := dicom.ReadMeta(r)
		if err != nil {
			t.Fatalf("%s: meta: %v", ts, err)
		}
		if meta.TransferSyntaxUID != ts || meta.SOPInstanceUID != "2.25.77.4" || meta.SOPClassUID != dicom.CTImageStorage {
			t.Fatalf("%s: meta %+v", ts, meta)
		}
		info, err := dicom.ReadInfo(r, ts)
		if err != nil {
			t.Fatalf("%s: dataset: %v", ts, err)
		}
		want := dicom.Info{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: "2.25.77.4", StudyUID: "2.25.77",
			SeriesUID: "2.25.77.1", PatientID: "PH-1", PatientName: "Phantom^Héad", Modality: "CT"}
		info.DatasetLength = 0
		if info != want {
			t.Fatalf("%s: read back %+v, want %+v", ts, info, want)
		}
	}
}

// TestFillMakesDifferentImages checks that slices of one series differ in content,
// not only in UIDs, as a PACS that deduplicates by content would notice.
func TestFillMakesDifferentImages(t *testing.T) {
	a, b := Dataset(Spec{Fill: 1}), Dataset(Spec{Fill: 2})
	if bytes.Equal(a, b) || len(a) != len(b) {
		t.Fatalf("datasets with Fill 1 and 2: equal %v, lengths %d and %d", bytes.Equal(a, b), len(a), len(b))
	}
}
