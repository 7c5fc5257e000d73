package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// markAttr is the extended attribute that marks a slot's bytes as complete.
const markAttr = "user.lifeline.spool"

// setMark records m on the open file; the next fsync makes it durable with the data.
func setMark(f *os.File, m []byte) error {
	return unix.Fsetxattr(int(f.Fd()), markAttr, m, 0)
}

// getMark reads the mark of the file at path.
func getMark(path string) ([]byte, error) {
	buf := make([]byte, 512)
	n, err := unix.Getxattr(path, markAttr, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
