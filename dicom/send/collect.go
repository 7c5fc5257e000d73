// Package send pushes DICOM files from a folder, a DICOMDIR (a CD or USB stick from
// another hospital) or single files into a box with the C-STORE SCU, reporting
// progress and a summary. It backs `lifeline send`.
package send

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"lifeline/dicom"
)

// Instance is a file ready to send, with what the summary needs from its data set.
type Instance struct {
	dicom.File
	StudyUID string
}

// Skipped is a file that will not be sent, and why.
type Skipped struct {
	Path   string
	Reason string
	// Broken is true for a DICOM file that cannot be sent (it counts as a failure);
	// false for a file that is simply not DICOM or is an index such as a DICOMDIR.
	Broken bool
}

// Collection is what Collect found.
type Collection struct {
	Instances []Instance
	Skipped   []Skipped
}

// Collect reads paths: folders recursively, DICOMDIR files through their directory
// records, and single files. Each file is checked the way the box's SCP checks what
// it receives (File Meta Information, then the whole data set's structure), so that
// what would be refused is reported here instead.
func Collect(paths []string) (Collection, error) {
	var c Collection
	seen := map[string]bool{}
	add := func(p string) {
		abs, err := filepath.Abs(p)
		if err == nil {
			p = abs
		}
		if seen[p] {
			return
		}
		seen[p] = true
		c.addFile(p)
	}
	for _, root := range paths {
		st, err := os.Stat(root)
		if err != nil {
			return c, fmt.Errorf("send: %w", err)
		}
		if !st.IsDir() {
			if isDICOMDIR(root) {
				refs, err := dicomdirFiles(root)
				if err != nil {
					c.Skipped = append(c.Skipped, Skipped{Path: root, Reason: "unreadable DICOMDIR: " + err.Error(), Broken: true})
					continue
				}
				for _, r := range refs {
					add(r)
				}
				continue
			}
			add(root)
			continue
		}
		var files []string
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				c.Skipped = append(c.Skipped, Skipped{Path: p, Reason: err.Error(), Broken: true})
				return nil
			}
			if d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return c, err
		}
		sort.Strings(files)
		for _, f := range files {
			add(f)
		}
	}
	return c, nil
}

func isDICOMDIR(p string) bool {
	if strings.EqualFold(filepath.Base(p), "DICOMDIR") {
		return true
	}
	f, err := dicom.OpenFile(p)
	return err == nil && f.Meta.SOPClassUID == dicom.MediaStorageDirectorySOPClass
}

func (c *Collection) addFile(p string) {
	f, err := dicom.OpenFile(p)
	if err != nil {
		var pe *fs.PathError
		switch {
		case errors.As(err, &pe):
			c.Skipped = append(c.Skipped, Skipped{Path: p, Reason: pe.Err.Error(), Broken: true})
		default:
			c.Skipped = append(c.Skipped, Skipped{Path: p, Reason: strings.TrimPrefix(err.Error(), p+": ")})
		}
		return
	}
	if f.Meta.SOPClassUID == dicom.MediaStorageDirectorySOPClass {
		c.Skipped = append(c.Skipped, Skipped{Path: p, Reason: "DICOMDIR index (its files are sent, not the index)"})
		return
	}
	info, err := readInfo(f)
	if err != nil {
		c.Skipped = append(c.Skipped, Skipped{Path: p, Reason: "data set does not parse: " + err.Error(), Broken: true})
		return
	}
	if info.SOPInstanceUID != f.Meta.SOPInstanceUID || info.SOPClassUID != f.Meta.SOPClassUID {
		c.Skipped = append(c.Skipped, Skipped{Path: p, Reason: "File Meta Information and data set name different instances", Broken: true})
		return
	}
	c.Instances = append(c.Instances, Instance{File: f, StudyUID: info.StudyUID})
}

func readInfo(f dicom.File) (dicom.Info, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return dicom.Info{}, err
	}
	defer fh.Close()
	return dicom.ReadInfo(io.NewSectionReader(fh, f.DatasetOffset, f.DatasetSize), f.Meta.TransferSyntaxUID)
}

// dicomdirFiles returns the files a DICOMDIR's directory records reference
// (Referenced File ID, PS3.10 8.2), resolved against the DICOMDIR's folder. Media
// written on other systems often change the case of names, so a name that does not
// exist is looked up case-insensitively.
func dicomdirFiles(path string) ([]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	br := bufio.NewReader(fh)
	m, _, err := dicom.ReadMeta(br)
	if err != nil {
		return nil, err
	}
	var ids []string
	_, err = dicom.Walk(br, dicom.EncodingOf(m.TransferSyntaxUID), dicom.Visitor{
		Want: func(e dicom.Element) bool { return e.Tag == dicom.TagReferencedFileID },
		Value: func(e dicom.Element, v []byte) {
			ids = append(ids, strings.TrimRight(string(v), " \x00"))
		},
	})
	if err != nil {
		return nil, err
	}
	base := filepath.Dir(path)
	var out []string
	for _, id := range ids {
		parts := strings.Split(id, `\`)
		out = append(out, resolve(base, parts))
	}
	return out, nil
}

func resolve(base string, parts []string) string {
	p := base
	for _, part := range parts {
		next := filepath.Join(p, part)
		if _, err := os.Stat(next); err != nil {
			if entries, err := os.ReadDir(p); err == nil {
				for _, e := range entries {
					if strings.EqualFold(e.Name(), part) {
						next = filepath.Join(p, e.Name())
						break
					}
				}
			}
		}
		p = next
	}
	return p
}
