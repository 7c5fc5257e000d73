package transfer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"lifeline/internal/durable"
	"lifeline/internal/hubstate"
)

// InstanceRecord is one verified instance in the hub's archive index.
type InstanceRecord = hubstate.Instance

// archivePath is where a verified instance lives: one directory per study. Both UIDs
// were checked by ValidUID, so they cannot climb out of dir.
func archivePath(dir, studyUID, sopUID string) string {
	return filepath.Join(dir, "studies", studyUID, sopUID+".dcm")
}

// quarantinePath is where a box's copy of an instance waits for an operator when the
// archive holds its SOP Instance UID with other content: one directory per box, and
// the digest in the name, so that no copy overwrites another.
func quarantinePath(dir, device, sopUID, sha string) (string, error) {
	if !safeName(device) {
		return "", fmt.Errorf("transfer: device ID %q cannot name a quarantine directory", device)
	}
	return filepath.Join(dir, "quarantine", device, sopUID+"-"+sha[:min(len(sha), 16)]+".dcm"), nil
}

// safeName reports whether s can be one path element: the device IDs the hub issues
// (letters, digits, '.', '_', '-') always can.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= 64 && !strings.ContainsAny(s, "/\\\x00")
}

// partialPath is an upload's staging file: the bytes appended so far.
func partialPath(dir, uploadID string) string {
	return filepath.Join(dir, "uploads", uploadID+".part")
}

// moveInto renames a verified partial file to its archive or quarantine path durably:
// the file was fsynced chunk by chunk, so only the directories need syncing, the
// new ones' parents included.
func moveInto(partial, final string) error {
	if err := mkdirDurable(filepath.Dir(final)); err != nil {
		return err
	}
	if err := os.Rename(partial, final); err != nil {
		return fmt.Errorf("transfer: move %s to %s: %w", partial, final, err)
	}
	if err := durable.SyncDir(filepath.Dir(final)); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(partial))
}

// mkdirDurable makes dir and any missing parents, fsyncing the parent of each one it
// makes, so that a file later made durable inside is not lost with its directory.
func mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("transfer: make directory %s: %w", dir, err)
	}
	return durable.SyncDir(parent)
}

// errNotStored is returned when an instance the caller asked for is not in the archive.
var errNotStored = errors.New("transfer: instance not in the archive")
