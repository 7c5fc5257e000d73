package transfer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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

// partialPath is an upload's staging file: the bytes appended so far.
func partialPath(dir, uploadID string) string {
	return filepath.Join(dir, "uploads", uploadID+".part")
}

// moveIntoArchive renames a verified partial file to its archive path durably: the
// file was fsynced chunk by chunk, so only the two directories need syncing.
func moveIntoArchive(partial, final string) error {
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return fmt.Errorf("transfer: archive directory: %w", err)
	}
	if err := os.Rename(partial, final); err != nil {
		return fmt.Errorf("transfer: move %s into the archive: %w", partial, err)
	}
	if err := durable.SyncDir(filepath.Dir(final)); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(partial))
}

// errNotStored is returned when an instance the caller asked for is not in the archive.
var errNotStored = errors.New("transfer: instance not in the archive")
