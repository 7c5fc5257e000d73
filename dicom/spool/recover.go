package spool

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lifeline/dicom"
	"lifeline/internal/durable"
)

// corruptDir holds committed files that no longer parse, kept for an operator.
const corruptDir = ".corrupt"

// recover lands marked slots, removes partial files and brings the index in line with
// the files.
func (s *Spool) recover() error {
	landed, removed, err := s.recoverSlots()
	if err != nil {
		return err
	}
	n, err := durable.RemovePartials(s.dir)
	if err != nil {
		return err
	}
	removed += n
	indexed := map[string]string{} // path → SOP Instance UID
	var missing []record
	err = s.store.ForEach(instancesBucket, func(k, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("spool: index entry %q: %w", k, err)
		}
		if _, err := os.Stat(r.Path); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, r)
			return nil
		}
		indexed[r.Path] = r.SOPInstanceUID
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range missing {
		// A crash while a new instance was being committed (it was not
		// acknowledged), or someone removed the file.
		s.log.Warn("indexed instance has no file; dropping it from the index", "sop_instance_uid", r.SOPInstanceUID, "path", r.Path)
		if err := s.dropInstance(r); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: read %s: %w", s.dir, err)
	}
	added := 0
	for _, e := range entries {
		if !e.IsDir() || e.Name() == corruptDir {
			continue
		}
		sub := filepath.Join(s.dir, e.Name())
		n, err := durable.RemovePartials(sub)
		if err != nil {
			return err
		}
		removed += n
		files, err := os.ReadDir(sub)
		if err != nil {
			return fmt.Errorf("spool: read %s: %w", sub, err)
		}
		for _, f := range files {
			p := filepath.Join(sub, f.Name())
			if f.IsDir() || !strings.HasSuffix(f.Name(), ".dcm") || indexed[p] != "" {
				continue
			}
			if err := s.reindex(p); err != nil {
				s.log.Error("committed spool file does not parse; moved aside", "path", p, "err", err)
				if err := s.quarantine(p); err != nil {
					return err
				}
				continue
			}
			added++
		}
		if len(files) == 0 {
			os.Remove(sub)
		}
	}
	s.recovered = recovery{Landed: landed, Removed: removed, Indexed: added}
	if removed > 0 || added > 0 {
		s.log.Warn("spool recovered after an unclean stop", "partial_files_removed", removed, "files_indexed", added,
			"acknowledged_slots_landed", landed)
	}
	return nil
}

// recovery counts what Open found after an unclean stop.
type recovery struct {
	Landed  int // marked slots moved to their final names (acknowledged, not yet indexed)
	Removed int // partial files and unmarked slots removed (never acknowledged)
	Indexed int // files indexed that the index lacked
}

// readInstance parses and hashes a Part 10 file of the spool.
func readInstance(path string) (Instance, error) {
	f, err := os.Open(path)
	if err != nil {
		return Instance{}, err
	}
	defer f.Close()
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(f, h), 64<<10)
	meta, _, err := dicom.ReadMeta(br)
	if err != nil {
		return Instance{}, err
	}
	info, err := dicom.ReadInfo(br, meta.TransferSyntaxUID)
	if err != nil {
		return Instance{}, err
	}
	if info.SOPInstanceUID != meta.SOPInstanceUID || info.StudyUID == "" {
		return Instance{}, fmt.Errorf("%w: meta and data set disagree", dicom.ErrSOPMismatch)
	}
	io.Copy(io.Discard, br) // the walker may stop before trailing bytes of a deflated stream
	st, err := f.Stat()
	if err != nil {
		return Instance{}, err
	}
	return Instance{SOPInstanceUID: info.SOPInstanceUID, SOPClassUID: info.SOPClassUID, StudyUID: info.StudyUID,
		SeriesUID: info.SeriesUID, TransferSyntax: meta.TransferSyntaxUID, PatientID: info.PatientID,
		PatientName: info.PatientName, Modality: info.Modality, Size: st.Size(),
		SHA256: hex.EncodeToString(h.Sum(nil)), ReceivedAt: st.ModTime().UTC(), Path: path}, nil
}

// finalPath is where the instance in a slot belongs: DIR/STUDY/SOP.dcm.
func finalPath(dir, slot string) (string, error) {
	in, err := readInstance(slot)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, pathKey(in.StudyUID), pathKey(in.SOPInstanceUID)+".dcm"), nil
}

// reindex indexes a committed file that the index lacks: a crash came between the
// rename and the index update (its C-STORE was never acknowledged), or between the
// acknowledgement from a slot and the lander's index update (the file keeps the
// slot's mark, with the calling AE and time of receipt).
func (s *Spool) reindex(path string) error {
	inst, err := readInstance(path)
	if err != nil {
		return err
	}
	var m mark
	if raw, err := getMark(path); err == nil {
		json.Unmarshal(raw, &m)
	}
	inst.CallingAE = m.CallingAE
	if !m.ReceivedAt.IsZero() {
		inst.ReceivedAt = m.ReceivedAt
	}
	var old record
	hadOld := s.store.GetJSON(instancesBucket, inst.SOPInstanceUID, &old) == nil
	return s.index(inst, old, hadOld)
}

func (s *Spool) quarantine(path string) error {
	dir := filepath.Join(s.dir, corruptDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(dir, fmt.Sprintf("%d-%s", time.Now().UnixNano(), filepath.Base(path)))
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("spool: move %s aside: %w", path, err)
	}
	return durable.SyncDir(dir)
}

// dropInstance removes an instance from the index and from its study's counts.
func (s *Spool) dropInstance(r record) error {
	return s.store.Update(func(tx *durable.Tx) error {
		ib, err := durable.Bucket(tx, instancesBucket)
		if err != nil {
			return err
		}
		if err := ib.Delete([]byte(r.SOPInstanceUID)); err != nil {
			return err
		}
		sb, err := durable.Bucket(tx, studiesBucket)
		if err != nil {
			return err
		}
		v := sb.Get([]byte(r.StudyUID))
		if v == nil {
			return nil
		}
		var st studyRecord
		if err := json.Unmarshal(v, &st); err != nil {
			return err
		}
		st.Instances--
		st.Bytes -= r.Size
		pb, err := durable.Bucket(tx, pendingBucket)
		if err != nil {
			return err
		}
		if k := pendingKey(r.StudyUID, r.SOPInstanceUID); pb.Get(k) != nil {
			if err := pb.Delete(k); err != nil {
				return err
			}
			st.Pending--
		}
		if st.Instances <= 0 && st.Pending <= 0 {
			return sb.Delete([]byte(r.StudyUID))
		}
		data, err := json.Marshal(st)
		if err != nil {
			return err
		}
		return sb.Put([]byte(r.StudyUID), data)
	})
}
