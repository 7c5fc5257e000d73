package transfer

import (
	"bufio"
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
	"lifeline/internal/hubstate"
)

// finish verifies a whole upload and settles it: into the archive, or, when the
// archive holds its SOP Instance UID with other content, into quarantine.
func (in *Ingest) finish(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload) {
	receivedAt := time.Now().UTC()
	// Under the partial file's lock, so that of two hubs sharing the staging
	// directory that finish one upload at once, the second finds the instance moved
	// and archived, not half moved. Without a partial file the instance was moved
	// already (by a hub that crashed before indexing it, or just now by another).
	release, ok := in.lockExisting(ctx, w, rec)
	if !ok {
		return
	}
	defer release()
	src := in.stagedFile(rec)
	meta, ok := in.verify(ctx, w, rec, src)
	if !ok {
		return
	}
	inst := hubstate.Instance{SOPInstanceUID: rec.SOPInstanceUID, SOPClassUID: meta.SOPClassUID, StudyUID: rec.StudyUID,
		TransferSyntax: meta.TransferSyntaxUID, Device: rec.Device, Size: rec.Length, SHA256: rec.SHA256,
		Path: archivePath(in.dir, rec.StudyUID, rec.SOPInstanceUID), ReceivedAt: receivedAt, VerifiedAt: time.Now().UTC()}
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
		in.quarantine(ctx, w, rec, inst, src, existing)
		return
	}
	partial := partialPath(in.dir, rec.ID)
	switch {
	case found && src == partial:
		// The archive has this instance already; keep one copy.
		os.Remove(partial)
	case src == partial:
		if err := moveInto(partial, inst.Path); err != nil {
			in.internalError(w, "archive instance", err)
			return
		}
	}
	res, err := in.state.ArchiveInstance(ctx, rec.ID, inst, in.deliver != nil)
	var conflict *hubstate.ConflictError
	if errors.As(err, &conflict) {
		// Only another hub sharing the state can have archived the UID since the
		// look-up above; its copy's file lives on that hub, so ours moves aside.
		in.quarantine(ctx, w, rec, inst, inst.Path, conflict.Archived)
		return
	}
	if err != nil {
		in.internalError(w, "index instance", err)
		return
	}
	rec.Offset, rec.Complete = rec.Length, true
	in.announce(res)
	if res.Duplicate {
		in.m.duplicates.Inc()
		in.duplicates.Add(1)
		in.log.Info("transfer: duplicate upload of an archived instance; stored once", "device", rec.Device, "sop", rec.SOPInstanceUID)
		in.answerStored(w, rec, true, false)
		return
	}
	in.m.stored.Inc()
	in.emit("instance.verified", map[string]any{"device": rec.Device, "sop_instance_uid": rec.SOPInstanceUID, "study_uid": rec.StudyUID})
	if in.deliver != nil {
		in.poke()
	}
	in.answerStored(w, rec, false, false)
}

// stagedFile is where an upload's verified bytes are: its partial file, or, when a
// crash came after the file was moved and before the index recorded it, the
// quarantine or archive path it was moved to.
func (in *Ingest) stagedFile(rec hubstate.Upload) string {
	candidates := []string{partialPath(in.dir, rec.ID), archivePath(in.dir, rec.StudyUID, rec.SOPInstanceUID)}
	if q, err := quarantinePath(in.dir, rec.Device, rec.SOPInstanceUID, rec.SHA256); err == nil {
		candidates = []string{candidates[0], q, candidates[1]}
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return candidates[0]
}

// quarantine holds a verified copy apart because the archive holds its SOP Instance
// UID with other content (existing). Both copies are kept; the box is told its
// instance is held, so that it neither dead-letters it nor sends it again, and an
// operator sees the clash in the hub's status and audit log.
func (in *Ingest) quarantine(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload, inst hubstate.Instance, src string, existing hubstate.Instance) {
	qpath, err := quarantinePath(in.dir, rec.Device, rec.SOPInstanceUID, rec.SHA256)
	if err != nil {
		in.internalError(w, "quarantine instance", err)
		return
	}
	if src != qpath {
		if err := moveInto(src, qpath); err != nil {
			in.internalError(w, "quarantine instance", err)
			return
		}
	}
	inst.Path, inst.DeliveredAt = qpath, time.Time{}
	inst.ClashSHA256, inst.ClashDevice = existing.SHA256, existing.Device
	res, err := in.state.QuarantineInstance(ctx, rec.ID, inst)
	if err != nil {
		in.internalError(w, "index quarantined instance", err)
		return
	}
	rec.Offset, rec.Complete = rec.Length, true
	in.announce(res)
	if !res.Duplicate {
		in.m.quarantined.Inc()
		in.log.Warn("transfer: instance quarantined: its SOP Instance UID is archived with other content",
			"device", rec.Device, "sop", rec.SOPInstanceUID, "study", rec.StudyUID, "sha256", rec.SHA256,
			"archived_sha256", existing.SHA256, "archived_from", existing.Device, "path", qpath)
		in.emit("instance.quarantined", map[string]any{"device": rec.Device, "sop_instance_uid": rec.SOPInstanceUID,
			"study_uid": rec.StudyUID, "sha256": rec.SHA256, "archived_sha256": existing.SHA256,
			"archived_device": existing.Device, "path": qpath})
	}
	in.answerStored(w, rec, res.Duplicate, true)
}

// announce audits the study milestones a settled instance completed, for its box's
// record of the study and for any other box's.
func (in *Ingest) announce(res hubstate.Archived) {
	if res.InStudy {
		in.studyMilestones(res.Study)
	}
	for _, sp := range res.Others {
		in.studyMilestones(sp)
	}
}

// verify checks that the staged bytes are the instance the upload declared: its
// Repr-Digest, the SOP Instance UID in its File Meta Information, and the SOP
// Instance and Study Instance UIDs in its dataset, since the hub files it under the
// declared study. An upload that fails is dropped and refused; the box sends it
// again or dead-letters it.
func (in *Ingest) verify(ctx context.Context, w http.ResponseWriter, rec hubstate.Upload, src string) (dicom.Meta, bool) {
	sum, err := hashFile(src)
	if err != nil {
		in.internalError(w, "read received file", err)
		return dicom.Meta{}, false
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
		return dicom.Meta{}, false
	}
	meta, err := readIdentity(src, rec)
	if err != nil {
		reason := err.Error()
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

// hashFile returns the hex SHA-256 of the file at path.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// errIdentityRead stops the dataset walk once the identifying UIDs are read: they
// come before the pixel data, and the rest of the file was hashed already.
var errIdentityRead = errors.New("identity read")

// readIdentity reads the File Meta Information and the dataset's top-level SOP
// Instance and Study Instance UIDs, and checks them against what the upload declared.
func readIdentity(path string, rec hubstate.Upload) (dicom.Meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return dicom.Meta{}, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	meta, _, err := dicom.ReadMeta(br)
	if err != nil {
		return meta, err
	}
	if meta.SOPInstanceUID != rec.SOPInstanceUID {
		return meta, fmt.Errorf("file meta names SOP Instance UID %q, upload declared %q", meta.SOPInstanceUID, rec.SOPInstanceUID)
	}
	var sop, study string
	found := false
	stop := &stopReader{r: br, stop: &found}
	_, werr := dicom.Walk(stop, dicom.EncodingOf(meta.TransferSyntaxUID), dicom.Visitor{
		Want: func(e dicom.Element) bool {
			return e.Depth == 0 && (e.Tag == dicom.TagSOPInstanceUID || e.Tag == dicom.TagStudyInstanceUID)
		},
		Value: func(e dicom.Element, val []byte) {
			v := trimUIDValue(val)
			if e.Tag == dicom.TagSOPInstanceUID {
				sop = v
			} else {
				study, found = v, true
			}
		},
	})
	switch {
	case !found && werr != nil:
		return meta, fmt.Errorf("dataset unreadable before its Study Instance UID: %w", werr)
	case !found:
		return meta, errors.New("dataset has no Study Instance UID at top level")
	case study != rec.StudyUID:
		return meta, fmt.Errorf("dataset names Study Instance UID %q, upload declared %q", study, rec.StudyUID)
	case sop != rec.SOPInstanceUID:
		return meta, fmt.Errorf("dataset names SOP Instance UID %q, upload declared %q", sop, rec.SOPInstanceUID)
	}
	return meta, nil
}

// stopReader ends a dataset walk (with errIdentityRead) as soon as *stop is set, so
// that neither pixel data nor a deflate bomb is read for nothing.
type stopReader struct {
	r    io.Reader
	stop *bool
}

func (s *stopReader) Read(p []byte) (int, error) {
	if *s.stop {
		return 0, errIdentityRead
	}
	// Small reads, so that the walk stops soon after the UID it waits for.
	return s.r.Read(p[:min(len(p), 4096)])
}

func trimUIDValue(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == 0 || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return string(b)
}

func (in *Ingest) answerStored(w http.ResponseWriter, rec hubstate.Upload, duplicate, quarantined bool) {
	setOffsetHeaders(w, rec)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(map[string]any{"sop_instance_uid": rec.SOPInstanceUID, "stored": true,
		"duplicate": duplicate, "quarantined": quarantined})
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
