package spool

// The former path, before the response: fsync, rename into place, directory fsync,
// index. It serves replacements, Commit (a study the box makes itself and completes at
// once) and file systems without extended attributes; see slots.go for the rest.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"lifeline/internal/durable"
)

// commitNew stores a new instance the former way: the file is made durable under its
// final name first and indexed second, so that nothing reading the index (the
// forwarder sends pending instances while their study still arrives) finds an entry
// whose file is not there yet. A crash in between leaves a file without an entry,
// which Open indexes; it was not acknowledged, so nothing is lost either way.
func (s *Spool) commitNew(w *writer, inst Instance) error {
	if w.f == nil {
		return errors.New("spool: no file to commit")
	}
	if err := s.persist(w, inst.Path); err != nil {
		return err
	}
	if err := s.index(inst, record{}, false); err != nil {
		// The file is in place but the index refused it: nothing was
		// acknowledged, so take the file away again rather than leave a file no
		// one knows of until the next start.
		return errors.Join(err, s.unplace(inst.Path))
	}
	return nil
}

// replace stores different bytes for an indexed instance: file first, index second,
// so that the index never describes bytes that a crash could take back.
func (s *Spool) replace(w *writer, inst Instance, old record) error {
	if err := s.persist(w, inst.Path); err != nil {
		return err
	}
	if err := s.index(inst, old, true); err != nil {
		// The file is durable but not indexed: the sender gets a failure and sends
		// again, and Open would index the file after a crash. A file placed beside
		// the indexed one (another study) is taken away again.
		if old.Path != inst.Path {
			err = errors.Join(err, s.unplace(inst.Path))
		}
		return err
	}
	s.mu.Lock()
	s.replac++
	s.mu.Unlock()
	s.log.Warn("instance received again with different bytes; replaced the stored copy",
		"sop_instance_uid", inst.SOPInstanceUID, "old_sha256", old.SHA256, "new_sha256", inst.SHA256,
		"calling_ae", inst.CallingAE)
	if old.Path != inst.Path {
		os.Remove(old.Path)
	}
	return nil
}

// persist fsyncs the temporary file and moves it durably to path.
func (s *Spool) persist(w *writer, path string) error {
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		os.Remove(w.f.Name())
		return fmt.Errorf("spool: fsync %s: %w", w.f.Name(), err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("spool: close %s: %w", w.f.Name(), err)
	}
	if err := s.place(w.f.Name(), path); err != nil {
		os.Remove(w.f.Name())
		return err
	}
	return nil
}

// place renames a fsynced temporary file to its final path and makes the rename
// durable, creating (durably) the study directory when needed.
func (s *Spool) place(tmp, final string) error {
	dir := filepath.Dir(final)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("spool: create %s: %w", dir, err)
		}
		if err := durable.SyncDir(s.dir); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("spool: rename into %s: %w", final, err)
	}
	// One fsync of the target directory commits the rename (on ext4 and xfs the
	// journal records both directories in the same transaction); a temporary name
	// that reappeared in the root after a crash would be removed by Open anyway.
	return durable.SyncDir(dir)
}

// unplace removes, durably, a placed file that could not be indexed. An emptied study
// directory stays (another instance may be on its way into it); Open removes it.
func (s *Spool) unplace(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: remove unindexed %s: %w", path, err)
	}
	return durable.SyncDir(filepath.Dir(path))
}
