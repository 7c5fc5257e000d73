// Package proclog holds the log of a child process (a hub, a box, an SCP) that a
// test or benchmark starts, so that it can be read while the process still writes it:
// in a failure message, or while waiting for a line.
package proclog

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer for exec.Cmd's Stdout or Stderr whose String may be called
// at any time. The zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the log.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns the log written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
