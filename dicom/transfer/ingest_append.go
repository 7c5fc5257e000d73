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
	"time"

	"lifeline/dicom"
	"lifeline/internal/durable"
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
	// Reload under the lock: a concurrent append may have moved the offset.
	if err := in.store.GetJSON(bucketUploads, rec.ID, &rec); err != nil {
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
		if err := writeChunk(partialPath(in.dir, rec.ID), offset, body); err != nil {
			in.internalError(w, "store chunk", err)
			return
		}
		rec.Offset = end
		if err := in.store.PutJSON(bucketUploads, rec.ID, rec); err != nil {
			in.internalError(w, "record offset", err)
			return
		}
		in.bytesReceived.Add(int64(len(body)))
		in.m.bytes.Add(float64(len(body)))
	}
	if !complete {
		setOffsetHeaders(w, rec)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	in.finish(w, rec)
}

func (in *Ingest) offsetConflict(w http.ResponseWriter, rec uploadRecord, sent int64) {
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
func (in *Ingest) finish(w http.ResponseWriter, rec uploadRecord) {
	receivedAt := time.Now().UTC()
	partial := partialPath(in.dir, rec.ID)
	final := archivePath(in.dir, rec.StudyUID, rec.SOPInstanceUID)
	src := partial
	if _, err := os.Stat(partial); errors.Is(err, os.ErrNotExist) {
		// A crash after the rename and before the index update left the file here.
		src = final
	}
	sum, meta, err := verifyFile(src)
	if err != nil {
		in.internalError(w, "read received file", err)
		return
	}
	fields := map[string]any{"device": rec.Device, "sop_instance_uid": rec.SOPInstanceUID, "study_uid": rec.StudyUID}
	if sum != rec.SHA256 {
		in.m.badDigest.Inc()
		in.log.Warn("transfer: instance failed its Repr-Digest; discarded, the box will send it again",
			"device", rec.Device, "sop", rec.SOPInstanceUID, "want", rec.SHA256, "got", sum)
		fields["reason"] = "Repr-Digest mismatch"
		in.emit("instance.rejected", fields)
		if err := in.dropUpload(rec); err != nil {
			in.log.Error("transfer: drop bad upload", "upload", rec.ID, "err", err)
		}
		writeProblem(w, http.StatusUnprocessableEntity, ProblemDigest, "instance digest mismatch",
			fmt.Sprintf("received bytes hash to %s, Repr-Digest says %s", sum, rec.SHA256))
		return
	}
	if meta.err != nil || meta.SOPInstanceUID != rec.SOPInstanceUID {
		reason := fmt.Sprintf("file meta names SOP Instance UID %q, upload declared %q", meta.SOPInstanceUID, rec.SOPInstanceUID)
		if meta.err != nil {
			reason = meta.err.Error()
		}
		in.log.Warn("transfer: refused an upload that is not the declared DICOM instance", "device", rec.Device, "sop", rec.SOPInstanceUID, "reason", reason)
		fields["reason"] = reason
		in.emit("instance.refused", fields)
		if err := in.dropUpload(rec); err != nil {
			in.log.Error("transfer: drop invalid upload", "upload", rec.ID, "err", err)
		}
		writeProblem(w, http.StatusUnprocessableEntity, ProblemInvalidDICOM, "not the declared DICOM instance", reason)
		return
	}
	verifiedAt := time.Now().UTC()

	in.finalize.Lock()
	defer in.finalize.Unlock()
	var existing InstanceRecord
	found := false
	if err := in.store.View(func(tx *durable.Tx) error {
		var err error
		found, err = getJSONTx(tx, bucketInstances, rec.SOPInstanceUID, &existing)
		return err
	}); err != nil {
		in.internalError(w, "read archive index", err)
		return
	}
	if found && existing.SHA256 != rec.SHA256 {
		in.dropUpload(rec)
		in.refuseConflict(w, rec, existing)
		return
	}
	if found {
		// Idempotent: the archive has this instance already; keep one copy.
		if src == partial {
			os.Remove(partial)
		}
		rec.Complete = true
		if err := in.store.PutJSON(bucketUploads, rec.ID, rec); err != nil {
			in.internalError(w, "record upload", err)
			return
		}
		in.m.duplicates.Inc()
		in.duplicates.Add(1)
		in.log.Info("transfer: duplicate upload of an archived instance; stored once", "device", rec.Device, "sop", rec.SOPInstanceUID)
		in.answerStored(w, rec, true)
		return
	}
	if src == partial {
		if err := moveIntoArchive(partial, final); err != nil {
			in.internalError(w, "archive instance", err)
			return
		}
	}
	inst := InstanceRecord{SOPInstanceUID: rec.SOPInstanceUID, SOPClassUID: meta.SOPClassUID, StudyUID: rec.StudyUID,
		TransferSyntax: meta.TransferSyntaxUID, Device: rec.Device, Size: rec.Length, SHA256: rec.SHA256, Path: final,
		ReceivedAt: receivedAt, VerifiedAt: verifiedAt}
	if in.deliver == nil {
		inst.DeliveredAt = verifiedAt // the embedded archive is the destination
	}
	rec.Complete = true
	var milestones [3]bool
	var st studyRecord
	err = in.store.Update(func(tx *durable.Tx) error {
		if err := putJSONTx(tx, bucketInstances, inst.SOPInstanceUID, inst); err != nil {
			return err
		}
		if err := putJSONTx(tx, bucketUploads, rec.ID, rec); err != nil {
			return err
		}
		if in.deliver != nil {
			b, err := durable.Bucket(tx, bucketDelivery)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(inst.SOPInstanceUID), nil); err != nil {
				return err
			}
		}
		found, err := getJSONTx(tx, bucketStudies, rec.StudyUID, &st)
		if err != nil || !found {
			return err
		}
		milestones[0], milestones[1], milestones[2], err = studyProgress(tx, &st)
		if err != nil {
			return err
		}
		return putJSONTx(tx, bucketStudies, st.StudyUID, st)
	})
	if err != nil {
		in.internalError(w, "index instance", err)
		return
	}
	in.m.stored.Inc()
	in.emit("instance.verified", fields)
	in.studyMilestones(st, milestones)
	if in.deliver != nil {
		in.poke()
	}
	in.answerStored(w, rec, false)
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

func (in *Ingest) answerStored(w http.ResponseWriter, rec uploadRecord, duplicate bool) {
	setOffsetHeaders(w, rec)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(map[string]any{"sop_instance_uid": rec.SOPInstanceUID, "stored": true, "duplicate": duplicate})
}

func (in *Ingest) studyMilestones(st studyRecord, m [3]bool) {
	base := map[string]any{"device": st.Device, "study_uid": st.StudyUID, "instances": len(st.Expected)}
	with := func(k string, v time.Time) map[string]any {
		f := map[string]any{k: v}
		for key, val := range base {
			f[key] = val
		}
		return f
	}
	if m[0] {
		in.emit("study.received", with("received_at", st.ReceivedAt))
	}
	if m[1] {
		in.emit("study.verified", with("verified_at", st.VerifiedAt))
		in.log.Info("transfer: study received and verified", "study", st.StudyUID, "device", st.Device, "instances", len(st.Expected))
	}
	if m[2] {
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
	var st studyRecord
	var milestones [3]bool
	in.finalize.Lock()
	err = in.store.Update(func(tx *durable.Tx) error {
		found, err := getJSONTx(tx, bucketStudies, m.StudyUID, &st)
		if err != nil {
			return err
		}
		if !found {
			st = studyRecord{StudyUID: m.StudyUID, ManifestAt: time.Now().UTC()}
		}
		st.Device, st.PatientID, st.Modality, st.Priority = deviceOf(r.Context()), m.PatientID, m.Modality, m.Priority
		if st.Expected == nil {
			st.Expected = map[string]string{}
		}
		for _, inst := range m.Instances {
			if _, had := st.Expected[inst.SOPInstanceUID]; !had {
				// A study that grew after it was whole is not whole any more.
				st.ReceivedAt, st.VerifiedAt, st.DeliveredAt = time.Time{}, time.Time{}, time.Time{}
			}
			st.Expected[inst.SOPInstanceUID] = inst.SHA256
		}
		milestones[0], milestones[1], milestones[2], err = studyProgress(tx, &st)
		if err != nil {
			return err
		}
		return putJSONTx(tx, bucketStudies, st.StudyUID, st)
	})
	in.finalize.Unlock()
	if err != nil {
		in.internalError(w, "record manifest", err)
		return
	}
	in.studyMilestones(st, milestones)
	in.writeReceipt(w, m.StudyUID)
}

// receipt handles GET StudiesPath/{study}.
func (in *Ingest) receipt(w http.ResponseWriter, r *http.Request) {
	in.writeReceipt(w, r.PathValue("study"))
}

func (in *Ingest) writeReceipt(w http.ResponseWriter, study string) {
	rc, err := in.Receipt(study)
	if errors.Is(err, durable.ErrNotFound) {
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
func (in *Ingest) Receipt(study string) (StudyReceipt, error) {
	rc := StudyReceipt{StudyUID: study}
	err := in.store.View(func(tx *durable.Tx) error {
		var st studyRecord
		found, err := getJSONTx(tx, bucketStudies, study, &st)
		if err != nil {
			return err
		}
		if !found {
			return durable.ErrNotFound
		}
		rc.Expected = len(st.Expected)
		for sop, sha := range st.Expected {
			var inst InstanceRecord
			ok, err := getJSONTx(tx, bucketInstances, sop, &inst)
			if err != nil {
				return err
			}
			if ok && inst.SHA256 == sha {
				rc.Stored++
			} else {
				rc.Missing = append(rc.Missing, sop)
			}
		}
		return nil
	})
	rc.Complete = err == nil && rc.Expected > 0 && rc.Stored == rc.Expected
	return rc, err
}
