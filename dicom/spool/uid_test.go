package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lifeline/dicom"
	"lifeline/dicom/phantom"
	"lifeline/internal/durable"
)

// spoolFiles lists every file under the spool directory, partial or placed.
func spoolFiles(t *testing.T, s *Spool) []string {
	t.Helper()
	var files []string
	filepath.Walk(s.Dir(), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !IsSlot(p) {
			files = append(files, p)
		}
		return nil
	})
	return files
}

// TestInvalidUIDsRefusedAndNothingLeft: the two UIDs of issue 16 item 11 (40,000
// digits; one with "../"), in the request or only in the data set, are refused as
// ErrSOPMismatch (0xA900), and the spool holds no file and no index entry afterwards.
func TestInvalidUIDsRefusedAndNothingLeft(t *testing.T) {
	s, _, _ := open(t, t.TempDir(), Config{})
	long := "1." + strings.Repeat("2", 40000)
	for _, c := range []struct {
		name string
		spec phantom.Spec
	}{
		{"40,000-character SOP Instance UID", phantom.Spec{SOPInstanceUID: long}},
		{"SOP Instance UID with ../", phantom.Spec{SOPInstanceUID: "../../1.2.3"}},
		{"leading zero component", phantom.Spec{SOPInstanceUID: "1.02.3"}},
		{"40,000-character Study UID in the data set", phantom.Spec{SOPInstanceUID: "2.25.11", StudyUID: long}},
		{"Study UID with ../ in the data set", phantom.Spec{SOPInstanceUID: "2.25.12", StudyUID: "../2.25"}},
		{"Series UID with ../ in the data set", phantom.Spec{SOPInstanceUID: "2.25.13", SeriesUID: "2.25/../1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := put(t, s, c.spec)
			if !errors.Is(err, dicom.ErrSOPMismatch) {
				t.Fatalf("stored with %v, want ErrSOPMismatch", err)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error of %d bytes repeats the whole UID", len(err.Error()))
			}
			if files := spoolFiles(t, s); len(files) != 0 {
				t.Errorf("refused instance left %v", files)
			}
		})
	}
	n := 0
	s.Instances(func(Instance) error { n++; return nil })
	if n != 0 {
		t.Errorf("index holds %d instances, want 0", n)
	}
}

// TestIndexFailureRemovesPlacedFile: when the index refuses a new instance after its
// file was placed (here: a study entry that no longer decodes), the commit fails and
// the file is gone at once, not left unindexed until the next start.
func TestIndexFailureRemovesPlacedFile(t *testing.T) {
	s, store, _ := open(t, t.TempDir(), Config{})
	if err := store.Update(func(tx *durable.Tx) error {
		b, err := durable.Bucket(tx, studiesBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte("2.25.77"), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	err := put(t, s, phantom.Spec{StudyUID: "2.25.77", SOPInstanceUID: "2.25.77.1"})
	if err == nil || !strings.Contains(err.Error(), "index entry") {
		t.Fatalf("commit with a broken index: %v", err)
	}
	if files := spoolFiles(t, s); len(files) != 0 {
		t.Errorf("file left after the index refused it: %v", files)
	}
	if _, err := s.Instance("2.25.77.1"); !errors.Is(err, durable.ErrNotFound) {
		t.Errorf("instance indexed after all: %v", err)
	}
	// The spool still stores into other studies.
	if err := put(t, s, phantom.Spec{StudyUID: "2.25.78", SOPInstanceUID: "2.25.78.1"}); err != nil {
		t.Fatal(err)
	}
}
