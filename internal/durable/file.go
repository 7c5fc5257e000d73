package durable

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// tempPrefix marks files that are being written. Recover removes them at start-up:
// nothing was acknowledged for them, so they may go.
const tempPrefix = ".partial-"

// AtomicFile is a file that becomes visible under its final name only on Commit,
// after its bytes are on stable storage. Until then it is a hidden temporary file in
// the same directory.
type AtomicFile struct {
	f     *os.File
	final string
	done  bool
}

// CreateAtomic starts writing the file that will be called path.
func CreateAtomic(path string, perm os.FileMode) (*AtomicFile, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("durable: create directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return nil, fmt.Errorf("durable: create temporary file for %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("durable: chmod %s: %w", f.Name(), err)
	}
	return &AtomicFile{f: f, final: path}, nil
}

// Write appends p to the temporary file.
func (a *AtomicFile) Write(p []byte) (int, error) { return a.f.Write(p) }

// ReadFrom copies r into the temporary file.
func (a *AtomicFile) ReadFrom(r io.Reader) (int64, error) { return io.Copy(a.f, r) }

// Name returns the final path.
func (a *AtomicFile) Name() string { return a.final }

// Commit fsyncs the file, renames it to its final name and fsyncs the directory, so
// that after Commit returns the file survives a power cut.
func (a *AtomicFile) Commit() error {
	if a.done {
		return errors.New("durable: file already committed or aborted")
	}
	a.done = true
	tmp := a.f.Name()
	if err := a.f.Sync(); err != nil {
		a.f.Close()
		os.Remove(tmp)
		return fmt.Errorf("durable: fsync %s: %w", tmp, err)
	}
	if err := a.f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("durable: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, a.final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("durable: rename to %s: %w", a.final, err)
	}
	return SyncDir(filepath.Dir(a.final))
}

// Abort discards the temporary file. It is safe to call after Commit.
func (a *AtomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.f.Close()
	os.Remove(a.f.Name())
}

// WriteFile writes data to path atomically and durably.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	a, err := CreateAtomic(path, perm)
	if err != nil {
		return err
	}
	if _, err := a.Write(data); err != nil {
		a.Abort()
		return fmt.Errorf("durable: write %s: %w", path, err)
	}
	return a.Commit()
}

// SyncDir fsyncs a directory so that renames and creations in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("durable: open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("durable: fsync directory %s: %w", dir, err)
	}
	return nil
}

// RemovePartials deletes the temporary files that a crash left in dir (not below it)
// and returns how many it removed.
func RemovePartials(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("durable: read %s: %w", dir, err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() && IsPartial(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// IsPartial reports whether name is a temporary file of CreateAtomic.
func IsPartial(name string) bool {
	return strings.HasPrefix(filepath.Base(name), tempPrefix)
}
