package transfer

import (
	"context"
	"errors"
	"fmt"
	"lifeline/internal/hubstate"
	"net/http"
	"os"
	"time"
)

// partialLock is an upload's partial file held open under an exclusive lock. Every
// hub that reads an upload's offset in order to write, cut, move or remove its
// partial file takes this lock first, so that hubs sharing one staging directory
// (several hubs on one shared state, [state] shared_dir) take turns on an upload: one
// hub's truncation cannot cut bytes another hub recorded a moment before, and one
// instance is not moved into the archive by two hubs at once. Within one hub the
// upload's mutex (Ingest.lock) orders requests first, so the file lock is only ever
// contended between processes.
//
// The lock is an open file description lock (fcntl F_OFD_SETLK) on Linux: held by
// this open file, released when it is closed or its process dies (SIGKILL included),
// not dropped when the process closes another descriptor of the same file (as a
// classic POSIX lock is, e.g. when the instance is hashed), and taken on the server
// by NFSv4 clients, so that it holds between machines that mount one directory.
type partialLock struct {
	f       *os.File
	created bool // the file was made by this lock's open
}

// release closes the file, which releases the lock.
func (p *partialLock) release() { p.f.Close() }

var (
	// errNoPartial says the upload has no partial file to lock, and none was to be
	// made.
	errNoPartial = errors.New("transfer: upload has no partial file")
	// errPartialBusy says another process held the partial file's lock for longer
	// than partialLockWait.
	errPartialBusy = errors.New("transfer: another hub holds the upload's partial file")
)

// partialLockWait bounds the wait for the lock: another hub's append holds it for
// one chunk (at most MaxChunk bytes written and fsynced), a finish for one hash of the
// instance. A box whose request waited longer is told to come back.
const partialLockWait = 20 * time.Second

// lockPartial opens the partial file at path, making it when it is missing and
// create is set (else errNoPartial), and waits for its exclusive lock. The file may
// have been moved into the archive or removed by the process it waited for, and a
// lock on a file no longer at path guards nothing, so the lock is taken again on
// whatever path names then.
func lockPartial(ctx context.Context, path string, create bool) (*partialLock, error) {
	deadline := time.Now().Add(partialLockWait)
	for {
		f, created, err := openPartial(path, create)
		if err != nil {
			return nil, err
		}
		if err := waitLock(ctx, f, deadline); err != nil {
			f.Close()
			return nil, err
		}
		same, err := stillAt(f, path)
		if err != nil {
			f.Close()
			return nil, err
		}
		if same {
			return &partialLock{f: f, created: created}, nil
		}
		f.Close()
	}
}

// waitLock takes f's exclusive lock, polling while another process holds it, until
// ctx ends or deadline passes.
func waitLock(ctx context.Context, f *os.File, deadline time.Time) error {
	pause := 2 * time.Millisecond
	for {
		ok, err := tryLock(f)
		switch {
		case err != nil:
			return fmt.Errorf("transfer: lock %s: %w", f.Name(), err)
		case ok:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%w %s after %v", errPartialBusy, f.Name(), partialLockWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// stillAt reports whether path still names the open file f.
func stillAt(f *os.File, path string) (bool, error) {
	held, err := f.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, now), nil
}

// openPartial opens an upload's partial file, making it if it is missing and create
// is set, and says whether it did.
func openPartial(path string, create bool) (*os.File, bool, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		switch {
		case err == nil:
			return f, false, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, false, err
		case !create:
			return nil, false, errNoPartial
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, true, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, false, err
		}
		// Another hub made it in between: open that one.
	}
}

// lockExisting takes the lock of rec's partial file, if it has one, for a request
// that changes or removes it. It answers the request itself and returns false when
// the lock cannot be had: 503 with Retry-After while another hub holds it, 500 on a
// failure. Without a partial file there is nothing to guard, and release does nothing.
func (in *Ingest) lockExisting(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload) (release func(), ok bool) {
	pl, err := lockPartial(ctx, partialPath(in.dir, rec.ID), false)
	switch {
	case err == nil:
		return pl.release, true
	case errors.Is(err, errNoPartial):
		return func() {}, true
	case errors.Is(err, errPartialBusy):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, ProblemInternalFailed, "upload busy", err.Error())
	default:
		in.internalError(w, "lock upload", err)
	}
	return nil, false
}
