//go:build !linux

package spool

import (
	"errors"
	"os"
)

// Marks need extended attributes, which the spool uses on Linux only; elsewhere every
// instance takes the former path (fsync, rename, directory fsync, index).

func setMark(*os.File, []byte) error { return errors.ErrUnsupported }

func getMark(string) ([]byte, error) { return nil, errors.ErrUnsupported }
