//go:build unix && !linux

package transfer

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// tryLock takes f's flock(2) lock, exclusive, and says false when another open file
// holds it. Lifeline's hubs run on Linux; this keeps the package building elsewhere.
func tryLock(f *os.File) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
