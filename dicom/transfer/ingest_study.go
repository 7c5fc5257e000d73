package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"lifeline/internal/hubstate"
)

// manifest handles PUT StudiesPath/{study}/manifest: the box says which instances
// make the study whole, and learns which the hub holds. The manifest goes into the
// box's own record of the study: another box's manifest for the same Study Instance
// UID neither reads nor changes it.
func (in *Ingest) manifest(w http.ResponseWriter, r *http.Request) {
	release, ok := in.manifestSlots.acquire(deviceOf(r.Context()))
	if !ok {
		in.busy(w, r, "manifests")
		return
	}
	defer release()
	body, err := readManifest(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, http.StatusRequestEntityTooLarge, ProblemBadRequest, "manifest too large", fmt.Sprintf("at most %d bytes", maxManifest))
			return
		}
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
	device := deviceOf(r.Context())
	mf := hubstate.Manifest{StudyUID: m.StudyUID, Device: device, PatientID: m.PatientID, Modality: m.Modality,
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

// readManifest reads a manifest body of at most maxManifest bytes into one buffer of
// the size the box declared, so that reading it leaves no trail of outgrown buffers.
func readManifest(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, maxManifest)
	if r.ContentLength < 0 || r.ContentLength > maxManifest {
		return io.ReadAll(body)
	}
	buf := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, err
	}
	// More than declared is a broken request; MaxBytesReader still bounds it.
	if n, _ := body.Read(make([]byte, 1)); n > 0 {
		return nil, fmt.Errorf("manifest longer than its Content-Length %d", r.ContentLength)
	}
	return buf, nil
}

// receipt handles GET StudiesPath/{study}: the asking box's record only.
func (in *Ingest) receipt(w http.ResponseWriter, r *http.Request) {
	if err := ValidUID(r.PathValue("study")); err != nil {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad study UID", err.Error())
		return
	}
	in.writeReceipt(w, r, r.PathValue("study"))
}

func (in *Ingest) writeReceipt(w http.ResponseWriter, r *http.Request, study string) {
	rc, err := in.Receipt(r.Context(), deviceOf(r.Context()), study)
	if errors.Is(err, hubstate.ErrNotFound) {
		writeProblem(w, http.StatusNotFound, ProblemBadRequest, "no such study from this box", study)
		return
	}
	if err != nil {
		in.internalError(w, "study receipt", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rc)
}

// Receipt tells which instances of device's manifest for a study the hub holds:
// archived with the manifest's digest, or held in quarantine for that box.
func (in *Ingest) Receipt(ctx context.Context, device, study string) (StudyReceipt, error) {
	rc := StudyReceipt{StudyUID: study}
	v, err := in.state.Study(ctx, device, study)
	if err != nil {
		return rc, err
	}
	rc.Expected = len(v.Expected)
	for sop, sha := range v.Expected {
		inst, ok := v.Archived[sop]
		switch {
		case !ok || inst.SHA256 != sha:
			rc.Missing = append(rc.Missing, sop)
		case inst.Quarantined:
			rc.Stored++
			rc.Quarantined = append(rc.Quarantined, sop)
		default:
			rc.Stored++
		}
	}
	slices.Sort(rc.Missing)
	slices.Sort(rc.Quarantined)
	rc.Complete = rc.Expected > 0 && rc.Stored == rc.Expected
	return rc, nil
}
