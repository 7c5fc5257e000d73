package transfer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"lifeline/dicom"
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

// appendChunk handles PATCH on an upload. The whole chunk is read and its
// Content-Digest checked before anything touches the disk, so a corrupted or cut-off
// chunk is never stored; the partial file grows only by verified, fsynced chunks.
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxChunk))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, http.StatusRequestEntityTooLarge, ProblemBadRequest, "chunk too large", fmt.Sprintf("at most %d bytes per append", MaxChunk))
			return
		}
		// The box went away mid-chunk; nothing of it is kept.
		in.log.Info("transfer: chunk cut off", "upload", r.PathValue("id"), "offset", offset, "err", err)
		return
	}
	in.wireBytes.Add(int64(len(body)))
	in.m.wireBytes.Add(float64(len(body)))
	if len(body) > 0 || r.Header.Get(hdrContentDigest) != "" {
		want, err := ParseDigest(r.Header.Get(hdrContentDigest))
		if err != nil {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad Content-Digest", err.Error())
			return
		}
		if got := sha256.Sum256(body); !bytes.Equal(got[:], want) {
			in.corruptChunks.Add(1)
			in.m.corruptChunks.Inc()
			in.log.Warn("transfer: chunk failed its Content-Digest; refused, the box will resend it",
				"device", deviceOf(r.Context()), "upload", r.PathValue("id"), "offset", offset, "bytes", len(body))
			writeProblem(w, http.StatusBadRequest, ProblemChunkDigest, "chunk digest mismatch",
				fmt.Sprintf("chunk at offset %d does not match its Content-Digest", offset))
			return
		}
	}
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "zstd":
		body, err = in.decoder.DecodeAll(body, make([]byte, 0, MaxChunk))
		if err != nil {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad zstd chunk", err.Error())
			return
		}
	default:
		writeProblem(w, http.StatusUnsupportedMediaType, ProblemBadRequest, "unsupported Content-Encoding", enc)
		return
	}

	rec, ok := in.loadUpload(w, r)
	if !ok {
		return
	}
	defer in.lock(rec.ID)()
	// From here the box may go away: what it sent is checked and is recorded anyway.
	ctx := context.WithoutCancel(r.Context())
	// Reload under the lock: a concurrent append may have moved the offset.
	if rec, err = in.state.Upload(ctx, rec.ID); err != nil {
		in.internalError(w, "read upload", err)
		return
	}
	if rec.Complete {
		if offset == rec.Length && len(body) == 0 {
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
	end := offset + int64(len(body))
	if end > rec.Length || (complete && end != rec.Length) {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "append does not fit the upload",
			fmt.Sprintf("offset %d + %d bytes against Upload-Length %d (complete=%v)", offset, len(body), rec.Length, complete))
		return
	}
	if len(body) > 0 {
		if rec, ok = in.stage(ctx, w, rec, body); !ok {
			return
		}
	}
	if !complete {
		setOffsetHeaders(w, rec)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	in.finish(ctx, w, rec)
}

// stage makes a verified chunk durable in the upload's staging file, then moves the
// upload's offset past it. The offset moves only from where the chunk starts, so a
// chunk that lost a race to the same bytes is answered with the offset as it is.
// Within one hub the upload's lock orders appends; hubs sharing a staging directory
// would also need writeChunk's truncation kept from cutting bytes another hub has
// recorded in the meantime (a lock on the file), which one hub never needs.
func (in *Ingest) stage(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload, body []byte) (hubstate.Upload, bool) {
	if err := writeChunk(partialPath(in.dir, rec.ID), rec.Offset, body); err != nil {
		in.internalError(w, "store chunk", err)
		return rec, false
	}
	moved, err := in.state.AdvanceUpload(ctx, rec.ID, rec.Offset, rec.Offset+int64(len(body)))
	var stale *hubstate.OffsetError
	if errors.As(err, &stale) {
		in.offsetConflict(w, stale.Upload, rec.Offset)
		return rec, false
	}
	if err != nil {
		in.internalError(w, "record offset", err)
		return rec, false
	}
	in.bytesReceived.Add(int64(len(body)))
	in.m.bytes.Add(float64(len(body)))
	return moved, true
}

func (in *Ingest) offsetConflict(w http.ResponseWriter, rec hubstate.Upload, sent int64) {
	setOffsetHeaders(w, rec)
	writeProblem(w, http.StatusConflict, ProblemOffset, "offset mismatch",
		fmt.Sprintf("append at %d but the hub holds %d bytes", sent, rec.Offset))
}

// writeChunk writes data at offset, first cutting off anything past offset that a
// crash between writing and recording a previous chunk left behind.
func writeChunk(path string, offset int64, data []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(offset); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteAt(data, offset); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// finish verifies a whole upload and moves it into the archive.
func (in *Ingest) finish(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload) {
	receivedAt := time.Now().UTC()
	partial := partialPath(in.dir, rec.ID)
	final := archivePath(in.dir, rec.StudyUID, rec.SOPInstanceUID)
	src := partial
	if _, err := os.Stat(partial); errors.Is(err, os.ErrNotExist) {
		// A crash after the rename and before the index update left the file here.
		src = final
	}
	meta, ok := in.verify(ctx, w, rec, src)
	if !ok {
		return
	}
	inst := hubstate.Instance{SOPInstanceUID: rec.SOPInstanceUID, SOPClassUID: meta.SOPClassUID, StudyUID: rec.StudyUID,
		TransferSyntax: meta.TransferSyntaxUID, Device: rec.Device, Size: rec.Length, SHA256: rec.SHA256, Path: final,
		ReceivedAt: receivedAt, VerifiedAt: time.Now().UTC()}
	if in.deliver == nil {
		inst.DeliveredAt = inst.VerifiedAt // the embedded archive is the destination
	}

	in.finalize.Lock()
	defer in.finalize.Unlock()
	existing, err := in.state.Instance(ctx, rec.SOPInstanceUID)
	found := err == nil
	if err != nil && !errors.Is(err, hubstate.ErrNotFound) {
		in.internalError(w, "read archive index", err)
		return
	}
	if found && existing.SHA256 != rec.SHA256 {
		in.dropUpload(ctx, rec)
		in.refuseConflict(w, rec, existing)
		return
	}
	switch {
	case found && src == partial:
		// The archive has this instance already; keep one copy.
		os.Remove(partial)
	case src == partial:
		if err := moveIntoArchive(partial, final); err != nil {
			in.internalError(w, "archive instance", err)
			return
		}
	}
	res, err := in.state.ArchiveInstance(ctx, rec.ID, inst, in.deliver != nil)
	if err != nil {
		in.internalError(w, "index instance", err)
		return
	}
	rec.Offset, rec.Complete = rec.Length, true
	if res.Duplicate {
		in.m.duplicates.Inc()
		in.duplicates.Add(1)
		in.log.Info("transfer: duplicate upload of an archived instance; stored once", "device", rec.Device, "sop", rec.SOPInstanceUID)
		in.answerStored(w, rec, true)
		return
	}
	in.m.stored.Inc()
	in.emit("instance.verified", map[string]any{"device": rec.Device, "sop_instance_uid": rec.SOPInstanceUID, "study_uid": rec.StudyUID})
	if res.InStudy {
		in.studyMilestones(res.Study)
	}
	if in.deliver != nil {
		in.poke()
	}
	in.answerStored(w, rec, false)
}

// verify checks that the staged bytes are the instance the upload declared: its
// Repr-Digest, and the SOP Instance UID in its File Meta Information. An upload that
// fails is dropped and refused; the box sends it again or dead-letters it.
func (in *Ingest) verify(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload, src string) (metaResult, bool) {
	sum, meta, err := verifyFile(src)
	if err != nil {
		in.internalError(w, "read received file", err)
		return meta, false
	}
	fields := map[string]any{"device": rec.Device, "sop_instance_uid": rec.SOPInstanceUID, "study_uid": rec.StudyUID}
	if sum != rec.SHA256 {
		in.m.badDigest.Inc()
		in.log.Warn("transfer: instance failed its Repr-Digest; discarded, the box will send it again",
			"device", rec.Device, "sop", rec.SOPInstanceUID, "want", rec.SHA256, "got", sum)
		fields["reason"] = "Repr-Digest mismatch"
		in.emit("instance.rejected", fields)
		if err := in.dropUpload(ctx, rec); err != nil {
			in.log.Error("transfer: drop bad upload", "upload", rec.ID, "err", err)
		}
		writeProblem(w, http.StatusUnprocessableEntity, ProblemDigest, "instance digest mismatch",
			fmt.Sprintf("received bytes hash to %s, Repr-Digest says %s", sum, rec.SHA256))
		return meta, false
	}
	if meta.err != nil || meta.SOPInstanceUID != rec.SOPInstanceUID {
		reason := fmt.Sprintf("file meta names SOP Instance UID %q, upload declared %q", meta.SOPInstanceUID, rec.SOPInstanceUID)
		if meta.err != nil {
			reason = meta.err.Error()
		}
		in.log.Warn("transfer: refused an upload that is not the declared DICOM instance", "device", rec.Device, "sop", rec.SOPInstanceUID, "reason", reason)
		fields["reason"] = reason
		in.emit("instance.refused", fields)
		if err := in.dropUpload(ctx, rec); err != nil {
			in.log.Error("transfer: drop invalid upload", "upload", rec.ID, "err", err)
		}
		writeProblem(w, http.StatusUnprocessableEntity, ProblemInvalidDICOM, "not the declared DICOM instance", reason)
		return meta, false
	}
	return meta, true
}

type metaResult struct {
	dicom.Meta
	err error
}

// verifyFile hashes the whole file and reads its File Meta Information.
func verifyFile(path string) (string, metaResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", metaResult{}, err
	}
	defer f.Close()
	h := sha256.New()
	// Everything bufio reads ahead passes through the hash; Copy hashes the rest.
	meta, _, merr := dicom.ReadMeta(bufio.NewReader(io.TeeReader(f, h)))
	if _, err := io.Copy(h, f); err != nil {
		return "", metaResult{}, err
	}
	return hex.EncodeToString(h.Sum(nil)), metaResult{Meta: meta, err: merr}, nil
}

func (in *Ingest) answerStored(w http.ResponseWriter, rec hubstate.Upload, duplicate bool) {
	setOffsetHeaders(w, rec)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(map[string]any{"sop_instance_uid": rec.SOPInstanceUID, "stored": true, "duplicate": duplicate})
}

// studyMilestones audits and logs each milestone a change completed for a study.
func (in *Ingest) studyMilestones(st hubstate.StudyProgress) {
	base := map[string]any{"device": st.Device, "study_uid": st.StudyUID, "instances": len(st.Expected)}
	with := func(k string, v time.Time) map[string]any {
		f := map[string]any{k: v}
		for key, val := range base {
			f[key] = val
		}
		return f
	}
	if st.Received {
		in.emit("study.received", with("received_at", st.ReceivedAt))
	}
	if st.Verified {
		in.emit("study.verified", with("verified_at", st.VerifiedAt))
		in.log.Info("transfer: study received and verified", "study", st.StudyUID, "device", st.Device, "instances", len(st.Expected))
	}
	if st.Delivered {
		in.emit("study.delivered", with("delivered_at", st.DeliveredAt))
		in.log.Info("transfer: study delivered", "study", st.StudyUID, "device", st.Device, "instances", len(st.Expected))
	}
}

// manifest handles PUT StudiesPath/{study}/manifest: the box says which instances
// make the study whole, and learns which the hub holds.
func (in *Ingest) manifest(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxManifest))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "manifest unreadable", err.Error())
		return
	}
	m, err := ParseManifest(body)
	if err != nil || m.StudyUID != r.PathValue("study") {
		if err == nil {
			err = fmt.Errorf("manifest is for study %s, URL names %s", m.StudyUID, r.PathValue("study"))
		}
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad manifest", err.Error())
		return
	}
	mf := hubstate.Manifest{StudyUID: m.StudyUID, Device: deviceOf(r.Context()), PatientID: m.PatientID, Modality: m.Modality,
		Priority: m.Priority, Instances: make(map[string]string, len(m.Instances)), At: time.Now().UTC()}
	for _, inst := range m.Instances {
		mf.Instances[inst.SOPInstanceUID] = inst.SHA256
	}
	st, err := in.state.RecordManifest(r.Context(), mf)
	if err != nil {
		in.internalError(w, "record manifest", err)
		return
	}
	in.studyMilestones(st)
	in.writeReceipt(w, r, m.StudyUID)
}

// receipt handles GET StudiesPath/{study}.
func (in *Ingest) receipt(w http.ResponseWriter, r *http.Request) {
	in.writeReceipt(w, r, r.PathValue("study"))
}

func (in *Ingest) writeReceipt(w http.ResponseWriter, r *http.Request, study string) {
	rc, err := in.Receipt(r.Context(), study)
	if errors.Is(err, hubstate.ErrNotFound) {
		writeProblem(w, http.StatusNotFound, ProblemBadRequest, "no such study", study)
		return
	}
	if err != nil {
		in.internalError(w, "study receipt", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rc)
}

// Receipt tells which instances of a study's manifest the archive holds. Only
// instances with the manifest's digest count.
func (in *Ingest) Receipt(ctx context.Context, study string) (StudyReceipt, error) {
	rc := StudyReceipt{StudyUID: study}
	v, err := in.state.Study(ctx, study)
	if err != nil {
		return rc, err
	}
	rc.Expected = len(v.Expected)
	for sop, sha := range v.Expected {
		if inst, ok := v.Archived[sop]; ok && inst.SHA256 == sha {
			rc.Stored++
		} else {
			rc.Missing = append(rc.Missing, sop)
		}
	}
	slices.Sort(rc.Missing)
	rc.Complete = rc.Expected > 0 && rc.Stored == rc.Expected
	return rc, nil
}
