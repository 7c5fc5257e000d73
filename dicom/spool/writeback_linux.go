package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how much received data accumulates before writeback starts.
const writebackChunk = 256 << 10

// startWriteback asks the kernel to begin writing the range to disk without waiting.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
