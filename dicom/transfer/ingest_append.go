package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"lifeline/internal/durable"
	"lifeline/internal/hubstate"
)

type deviceKey struct{}

func withDevice(ctx context.Context, device string) context.Context {
	return context.WithValue(ctx, deviceKey{}, device)
}

func deviceOf(ctx context.Context) string {
	d, _ := ctx.Value(deviceKey{}).(string)
	return d
}

// appendChunk handles PATCH on an upload. The chunk is streamed to a scratch file
// while it is hashed, so a box that stalls a chunk costs the hub disk, not memory,
// and only while it holds one of its few append slots. Its Content-Digest is checked
// before the chunk is written into the upload's partial file, which grows only by
// verified, fsynced chunks: a corrupted or cut-off chunk is never stored.
func (in *Ingest) appendChunk(w http.ResponseWriter, r *http.Request) {
	offset, err := ParseOffset(r.Header.Get(hdrUploadOffset))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad Upload-Offset", err.Error())
		return
	}
	complete := false
	if v := r.Header.Get(hdrUploadComplete); v != "" {
		if complete, err = ParseBool(v); err != nil {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad Upload-Complete", err.Error())
			return
		}
	}
	encoding := r.Header.Get("Content-Encoding")
	if encoding != "" && encoding != "identity" && encoding != "zstd" {
		writeProblem(w, http.StatusUnsupportedMediaType, ProblemBadRequest, "unsupported Content-Encoding", encoding)
		return
	}
	release, ok := in.appendSlots.acquire(deviceOf(r.Context()))
	if !ok {
		in.busy(w, r, "appends")
		return
	}
	defer release()
	rec, ok := in.loadUpload(w, r)
	if !ok {
		return
	}
	chunk, ok := in.receiveChunk(w, r, offset)
	if !ok {
		return
	}
	defer chunk.discard()

	defer in.lock(rec.ID)()
	// From here the box may go away: what it sent is checked and is recorded anyway.
	ctx := context.WithoutCancel(r.Context())
	// Reload under the lock: a concurrent append here may have moved the offset
	// (stage reads it once more under the partial file's lock, for other hubs).
	if rec, err = in.state.Upload(ctx, rec.ID); err != nil {
		in.internalError(w, "read upload", err)
		return
	}
	if rec.Complete {
		if offset == rec.Length && chunk.size == 0 {
			setOffsetHeaders(w, rec)
			w.WriteHeader(http.StatusOK)
			return
		}
		in.offsetConflict(w, rec, offset)
		return
	}
	if offset != rec.Offset {
		in.offsetConflict(w, rec, offset)
		return
	}
	if chunk.size > 0 {
		if rec, ok = in.stage(ctx, w, rec, chunk, encoding == "zstd", complete); !ok {
			return
		}
	} else if complete && rec.Offset != rec.Length {
		in.doesNotFit(w, rec, offset, 0, complete)
		return
	}
	if !complete {
		setOffsetHeaders(w, rec)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	in.finish(ctx, w, rec)
}

// chunkFile is one append's body as received: a scratch file in the scratch
// directory (IngestConfig.ScratchDir) and how many bytes it holds, its digest checked.
type chunkFile struct {
	f    *os.File
	size int64
}

func (c *chunkFile) discard() {
	c.f.Close()
	os.Remove(c.f.Name())
}

// scratchPrefix names the scratch files of chunks being received; whatever a crash
// leaves of them was never acknowledged, and NewIngest removes it.
const scratchPrefix = ".chunk-"

// receiveChunk streams the request body (at most MaxChunk bytes) to a scratch file
// while hashing it, and checks its Content-Digest. On any failure it has answered
// the box and kept nothing.
func (in *Ingest) receiveChunk(w http.ResponseWriter, r *http.Request, offset int64) (*chunkFile, bool) {
	var want []byte
	if d := r.Header.Get(hdrContentDigest); d != "" {
		var err error
		if want, err = ParseDigest(d); err != nil {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad Content-Digest", err.Error())
			return nil, false
		}
	}
	f, err := os.CreateTemp(in.cfg.ScratchDir, scratchPrefix+"*")
	if err != nil {
		in.internalError(w, "receive chunk", err)
		return nil, false
	}
	chunk := &chunkFile{f: f}
	h := sha256.New()
	chunk.size, err = io.Copy(io.MultiWriter(f, h), http.MaxBytesReader(w, r.Body, MaxChunk))
	in.wireBytes.Add(chunk.size)
	in.m.wireBytes.Add(float64(chunk.size))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		chunk.discard()
		writeProblem(w, http.StatusRequestEntityTooLarge, ProblemBadRequest, "chunk too large", fmt.Sprintf("at most %d bytes per append", MaxChunk))
		return nil, false
	case err != nil:
		// The box went away mid-chunk, or trickled it past the read timeout;
		// nothing of it is kept.
		chunk.discard()
		in.log.Info("transfer: chunk cut off", "upload", r.PathValue("id"), "offset", offset, "bytes", chunk.size, "err", err)
		return nil, false
	case chunk.size > 0 && want == nil:
		chunk.discard()
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad Content-Digest", "a chunk with content needs a Content-Digest")
		return nil, false
	case want != nil && !bytes.Equal(h.Sum(nil), want):
		chunk.discard()
		in.corruptChunks.Add(1)
		in.m.corruptChunks.Inc()
		in.log.Warn("transfer: chunk failed its Content-Digest; refused, the box will resend it",
			"device", deviceOf(r.Context()), "upload", r.PathValue("id"), "offset", offset, "bytes", chunk.size)
		writeProblem(w, http.StatusBadRequest, ProblemChunkDigest, "chunk digest mismatch",
			fmt.Sprintf("chunk at offset %d does not match its Content-Digest", offset))
		return nil, false
	}
	return chunk, true
}

// stage writes a verified chunk (decoding zstd) into the upload's partial file at its
// offset, makes it durable, then moves the upload's offset past it, all under the
// partial file's lock (partial_lock.go). Bytes written past the recorded offset are
// not part of the upload until the offset moves, and the next append cuts them off,
// so a chunk that decodes to more than fits is simply refused. The offset is read
// again under the lock, because another hub sharing the staging directory may have
// moved it since rec was read, and it moves only from where the chunk starts, so a
// chunk that lost a race to the same bytes is answered with the offset as it is.
func (in *Ingest) stage(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload, chunk *chunkFile, zstd, complete bool) (hubstate.Upload, bool) {
	if rec.Offset >= rec.Length {
		in.doesNotFit(w, rec, rec.Offset, chunk.size, complete)
		return rec, false
	}
	if _, err := chunk.f.Seek(0, io.SeekStart); err != nil {
		in.internalError(w, "read received chunk", err)
		return rec, false
	}
	pl, ok := in.lockStaged(ctx, w, rec)
	if !ok {
		return rec, false
	}
	defer pl.release()
	id, from := rec.ID, rec.Offset
	rec, err := in.state.Upload(ctx, id)
	switch {
	case errors.Is(err, hubstate.ErrNotFound):
		writeProblem(w, http.StatusNotFound, ProblemUnknownUpload, "no such upload", id)
		return rec, false
	case err != nil:
		in.internalError(w, "read upload", err)
		return rec, false
	case rec.Complete || rec.Offset != from:
		in.offsetConflict(w, rec, from)
		return rec, false
	}
	if ok := in.stagedBytesHere(ctx, w, rec, pl); !ok {
		return rec, false
	}
	room := min(rec.Length-rec.Offset, MaxChunk)
	n, err := in.writeChunk(pl, rec.Offset, chunk.f, room, zstd)
	var bad *badChunkError
	switch {
	case errors.As(err, &bad):
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad zstd chunk", bad.Error())
		return rec, false
	case err != nil:
		in.internalError(w, "store chunk", err)
		return rec, false
	case n > room || (complete && rec.Offset+n != rec.Length):
		in.doesNotFit(w, rec, rec.Offset, n, complete)
		return rec, false
	}
	moved, err := in.state.AdvanceUpload(ctx, rec.ID, rec.Offset, rec.Offset+n)
	var stale *hubstate.OffsetError
	if errors.As(err, &stale) {
		in.offsetConflict(w, stale.Upload, rec.Offset)
		return rec, false
	}
	if err != nil {
		in.internalError(w, "record offset", err)
		return rec, false
	}
	in.bytesReceived.Add(n)
	in.m.bytes.Add(float64(n))
	return moved, true
}

// lockStaged takes the lock of the upload's partial file, making the file for an
// upload with no bytes yet. An upload with bytes recorded and no partial file has
// lost them (stagedBytesLost). On failure it has answered the box.
func (in *Ingest) lockStaged(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload) (*partialLock, bool) {
	pl, err := lockPartial(ctx, partialPath(in.dir, rec.ID), rec.Offset == 0)
	switch {
	case errors.Is(err, errNoPartial):
		in.stagedBytesLost(ctx, w, rec, 0)
		return nil, false
	case errors.Is(err, errPartialBusy):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, ProblemInternalFailed, "upload busy", err.Error())
		return nil, false
	case err != nil:
		in.internalError(w, "lock upload", err)
		return nil, false
	}
	if pl.created {
		// The partial file's name must survive a power cut with the bytes it will hold.
		if err := durable.SyncDir(filepath.Dir(pl.f.Name())); err != nil {
			pl.release()
			in.internalError(w, "make partial file", err)
			return nil, false
		}
	}
	return pl, true
}

// stagedBytesHere checks, under the partial file's lock, that the file holds every
// byte the upload's offset counts; bytes past it are cut by the next write.
func (in *Ingest) stagedBytesHere(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload, pl *partialLock) bool {
	fi, err := pl.f.Stat()
	if err != nil {
		in.internalError(w, "read partial file", err)
		return false
	}
	if fi.Size() < rec.Offset {
		os.Remove(pl.f.Name())
		in.stagedBytesLost(ctx, w, rec, fi.Size())
		return false
	}
	return true
}

// stagedBytesLost answers an append to an upload whose recorded bytes are not in
// this hub's staging directory: it was begun at another hub that keeps its own (no
// shared_dir), or the directory lost them. The upload is dropped, and the box,
// finding it unknown, creates it again and sends it from byte 0, which is the most
// it could do: the alternative, filling the gap with zeros, would fail the
// instance's digest only once every byte had been sent.
func (in *Ingest) stagedBytesLost(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload, have int64) {
	in.log.Warn("transfer: an upload's staged bytes are not on this hub; the box starts it again",
		"device", rec.Device, "upload", rec.ID, "sop", rec.SOPInstanceUID, "offset", rec.Offset, "staged", have,
		"staging", filepath.Dir(partialPath(in.dir, rec.ID)))
	if err := in.state.DropUpload(ctx, rec.ID); err != nil {
		in.internalError(w, "drop upload", err)
		return
	}
	writeProblem(w, http.StatusNotFound, ProblemUnknownUpload, "upload's bytes not on this hub",
		fmt.Sprintf("upload %s holds %d bytes elsewhere; create it again", rec.ID, rec.Offset))
}

func (in *Ingest) doesNotFit(w http.ResponseWriter, rec hubstate.Upload, offset, n int64, complete bool) {
	detail := fmt.Sprintf("offset %d + %d bytes against Upload-Length %d (complete=%v)", offset, n, rec.Length, complete)
	if n > MaxChunk {
		detail = fmt.Sprintf("chunk at offset %d decodes to more than %d bytes", offset, MaxChunk)
	}
	writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "append does not fit the upload", detail)
}

func (in *Ingest) offsetConflict(w http.ResponseWriter, rec hubstate.Upload, sent int64) {
	setOffsetHeaders(w, rec)
	writeProblem(w, http.StatusConflict, ProblemOffset, "offset mismatch",
		fmt.Sprintf("append at %d but the hub holds %d bytes", sent, rec.Offset))
}

// badChunkError says a chunk's zstd frame did not decode.
type badChunkError struct{ err error }

func (e *badChunkError) Error() string { return "zstd frame: " + e.err.Error() }

// writeChunk writes the chunk read from src (decoded when zstd) at offset in the
// locked partial file and fsyncs it. It first cuts off anything past offset that a
// crash between writing and recording a previous chunk left behind. It writes at
// most room+1 bytes and returns how many it wrote, so the caller can tell a chunk
// that does not fit.
func (in *Ingest) writeChunk(pl *partialLock, offset int64, src io.Reader, room int64, zstd bool) (int64, error) {
	f := pl.f
	if err := f.Truncate(offset); err != nil {
		return 0, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	var n int64
	var err error
	if zstd {
		n, err = in.decoders.decode(f, src, room+1)
	} else {
		n, err = io.Copy(f, io.LimitReader(src, room+1))
	}
	if err != nil {
		return n, err
	}
	return n, f.Sync()
}
