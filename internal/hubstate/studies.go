package hubstate

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Studies keeps what the hub knows about the studies boxes upload: each upload in
// progress, each verified instance (the archive index), the copies held apart in
// quarantine, each box's record of each study (manifest and milestones), and the
// deliveries owed to the PACS. The uploaded bytes themselves are not here: they are
// staged and archived as files by the ingest.
//
// Study records belong to one box: a study is known by its box's device ID and its
// Study Instance UID, so that one box can neither read nor change what another
// declared. The archive index is shared, because a PACS knows an instance by its SOP
// Instance UID alone: the first verified copy of a UID is archived, and a later copy
// with other content (from any box) is quarantined for an operator instead of being
// refused, so that neither copy is lost and neither box is told its instance failed.
type Studies interface {
	// CreateUpload opens u and returns it, or returns the upload already open under
	// u.ID (an upload created again after a crash resumes at its offset). When the
	// archive holds u's instance with the same digest, or u's box has that very copy
	// in quarantine, the new upload starts complete. An archived instance with
	// another digest does not stop it: the clash is settled when it is archived.
	CreateUpload(ctx context.Context, u Upload) (Upload, error)
	// Upload returns one upload, or ErrNotFound.
	Upload(ctx context.Context, id string) (Upload, error)
	// AdvanceUpload moves an upload's offset from from to to, after the caller made
	// the bytes in between durable in the upload's staging file. It moves only if the
	// offset still is from, so of two appends of the same bytes only one counts; for
	// the other it returns an *OffsetError with the upload as it is.
	AdvanceUpload(ctx context.Context, id string, from, to int64) (Upload, error)
	// DropUpload forgets an upload; an unknown one is not an error.
	DropUpload(ctx context.Context, id string) error
	// ArchiveInstance enters a verified instance into the archive index, atomically
	// with marking its upload complete, queueing its delivery to the PACS when owed,
	// and updating the milestones of every box's record of its study. An instance
	// archived before with the same digest is kept once (Archived.Duplicate) and its
	// upload is marked complete; with another digest nothing changes and a
	// *ConflictError is returned, and the caller quarantines the copy instead.
	ArchiveInstance(ctx context.Context, uploadID string, inst Instance, owed bool) (Archived, error)
	// QuarantineInstance holds a verified copy whose SOP Instance UID the archive
	// holds with other content apart for an operator, atomically with marking its
	// upload complete and updating its box's record of its study. inst.Device,
	// SOPInstanceUID and SHA256 identify the copy; the same copy again is kept once
	// (Archived.Duplicate). A quarantined copy is held durably but never delivered.
	QuarantineInstance(ctx context.Context, uploadID string, inst Instance) (Archived, error)
	// Quarantine returns at most n quarantined copies in a stable order, and how many
	// there are in all.
	Quarantine(ctx context.Context, n int) (held []Instance, total int, err error)
	// Instance returns one archived instance, or ErrNotFound.
	Instance(ctx context.Context, sopInstanceUID string) (Instance, error)
	// RecordManifest merges a box's manifest into that box's record of the study
	// (created if new) and returns it with the milestones the manifest completed.
	RecordManifest(ctx context.Context, m Manifest) (StudyProgress, error)
	// Study returns one box's record of a study with the instances held for it, or
	// ErrNotFound when that box sent no manifest for the study.
	Study(ctx context.Context, device, studyUID string) (StudyView, error)
	// RecentStudies returns at most n study records of every box, the latest
	// manifest first.
	RecentStudies(ctx context.Context, n int) ([]StudyView, error)
	// DueDeliveries returns at most n instances owed to the PACS whose retry time is
	// not after now, and how many deliveries are owed in all.
	DueDeliveries(ctx context.Context, now time.Time, n int) (due []Instance, pending int, err error)
	// RecordDeliveries records the outcome of delivery attempts in one step: failed
	// ones wait until their RetryAt, delivered ones are no longer owed. It returns
	// each affected study record with the milestones these outcomes completed.
	RecordDeliveries(ctx context.Context, outcomes []DeliveryOutcome) ([]StudyProgress, error)
}

// Upload is the hub's state of one instance being uploaded. The JSON form is the
// embedded engine's record.
type Upload struct {
	ID             string    `json:"id"`
	Device         string    `json:"device"`
	SOPInstanceUID string    `json:"sop_instance_uid"`
	SOPClassUID    string    `json:"sop_class_uid,omitempty"`
	StudyUID       string    `json:"study_uid"`
	TransferSyntax string    `json:"transfer_syntax,omitempty"`
	Length         int64     `json:"length"`
	SHA256         string    `json:"sha256"` // hex
	Offset         int64     `json:"offset"` // bytes durable in the staging file
	Complete       bool      `json:"complete"`
	CreatedAt      time.Time `json:"created_at"`
}

// Instance is one verified instance in the archive index.
type Instance struct {
	SOPInstanceUID string    `json:"sop_instance_uid"`
	SOPClassUID    string    `json:"sop_class_uid,omitempty"`
	StudyUID       string    `json:"study_uid"`
	TransferSyntax string    `json:"transfer_syntax,omitempty"`
	Device         string    `json:"device"`
	Size           int64     `json:"size"`
	SHA256         string    `json:"sha256"`
	Path           string    `json:"path,omitempty"` // empty once pruned after delivery
	ReceivedAt     time.Time `json:"received_at"`
	VerifiedAt     time.Time `json:"verified_at"`
	DeliveredAt    time.Time `json:"delivered_at,omitzero"`
	Attempts       int       `json:"delivery_attempts,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	NextAttempt    time.Time `json:"next_attempt,omitzero"`
	// Quarantined marks a copy held apart because the archive holds its SOP Instance
	// UID with other content: ClashSHA256 from ClashDevice. It is never delivered.
	Quarantined bool   `json:"quarantined,omitempty"`
	ClashSHA256 string `json:"clash_sha256,omitempty"`
	ClashDevice string `json:"clash_device,omitempty"`
}

// Study is one box's record of one study: what its manifests expect and when it was
// first whole, verified and delivered. Device and StudyUID together name it.
type Study struct {
	StudyUID    string            `json:"study_uid"`
	Device      string            `json:"device"`
	PatientID   string            `json:"patient_id,omitempty"`
	Modality    string            `json:"modality,omitempty"`
	Priority    string            `json:"priority,omitempty"`
	Expected    map[string]string `json:"expected"` // SOP Instance UID → sha256 hex
	ManifestAt  time.Time         `json:"manifest_at"`
	ReceivedAt  time.Time         `json:"received_at,omitzero"`
	VerifiedAt  time.Time         `json:"verified_at,omitzero"`
	DeliveredAt time.Time         `json:"delivered_at,omitzero"`
}

// Manifest is a box's statement of which instances make a study whole.
type Manifest struct {
	StudyUID  string
	Device    string
	PatientID string
	Modality  string
	Priority  string
	Instances map[string]string // SOP Instance UID → sha256 hex
	At        time.Time         // when the hub received it
}

// StudyView is a study record with the instances held for it: of those it expects,
// the ones archived with the expected digest, and the ones its box has in quarantine
// with that digest (Instance.Quarantined).
type StudyView struct {
	Study
	Archived map[string]Instance // by SOP Instance UID
}

// Milestones says which of a study's milestones one change completed, so that each
// is announced (audited) once.
type Milestones struct {
	Received, Verified, Delivered bool
}

// StudyProgress is a study after a change, with the milestones the change completed.
type StudyProgress struct {
	Study
	Milestones
}

// Archived is the outcome of ArchiveInstance and QuarantineInstance.
type Archived struct {
	// Duplicate says the archive (or the quarantine) already held the copy; it was
	// kept once.
	Duplicate bool
	// Study is the uploading box's record of the instance's study with its new
	// milestones, when that box's manifest for it has arrived (InStudy).
	Study   StudyProgress
	InStudy bool
	// Others are other boxes' records of the study whose milestones this change
	// completed (they expected the same instance with the same digest).
	Others []StudyProgress
}

// Place sorts the freshly computed records of the instance's study, every box's, into
// a: the uploading device's record goes to Study, the others that completed a
// milestone to Others. Engines call it after recomputing the study inside the step.
func (a *Archived) Place(device string, all []StudyProgress) {
	for _, sp := range all {
		switch {
		case sp.Device == device:
			a.Study, a.InStudy = sp, true
		case sp.Milestones != (Milestones{}):
			a.Others = append(a.Others, sp)
		}
	}
}

// DeliveryOutcome is the result of one attempt to deliver an instance to the PACS.
type DeliveryOutcome struct {
	SOPInstanceUID string
	At             time.Time // when the attempt ended
	Err            string    // empty: the PACS confirmed the instance
	RetryAt        time.Time // after a failure: not before this
	// ForgetPath clears the instance's archive path on success, because the caller
	// removes the file (pruning after delivery).
	ForgetPath bool
}

// ErrConflict says an instance's SOP Instance UID is archived with other content;
// the copy is quarantined (QuarantineInstance) rather than refused.
var ErrConflict = errors.New("hubstate: instance archived with other content")

// ConflictError carries the archived instance an upload conflicts with.
type ConflictError struct{ Archived Instance }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("hubstate: instance %s is archived with SHA-256 %s", e.Archived.SOPInstanceUID, e.Archived.SHA256)
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ErrOffsetMoved says an upload's offset was not where an append expected it.
var ErrOffsetMoved = errors.New("hubstate: upload offset moved")

// OffsetError carries the upload as it is when AdvanceUpload found its offset moved.
type OffsetError struct {
	Upload Upload
	From   int64
}

func (e *OffsetError) Error() string {
	return fmt.Sprintf("hubstate: upload %s holds %d bytes, not %d", e.Upload.ID, e.Upload.Offset, e.From)
}

// Is makes errors.Is(err, ErrOffsetMoved) hold.
func (e *OffsetError) Is(target error) bool { return target == ErrOffsetMoved }

// Held looks up the instance held for a study record: the archived instance with
// the expected digest, or the record's box's quarantined copy with that digest.
type Held func(sop, sha256 string) (Instance, bool, error)

// Progress recomputes a study's milestones from the instances held for it and
// reports which ones this call completed. held looks an instance up in the same
// atomic step. Every engine uses it, so "whole", "verified" and "delivered" mean the
// same whatever stores them. A quarantined copy makes a study whole and verified (the
// hub holds it durably) but never delivered: an operator settles it first.
func (st *Study) Progress(held Held) (Milestones, error) {
	var m Milestones
	if len(st.Expected) == 0 {
		return m, nil
	}
	var lastRecv, lastVer, lastDel time.Time
	allDelivered := true
	for sop, sha := range st.Expected {
		inst, ok, err := held(sop, sha)
		if err != nil {
			return Milestones{}, err
		}
		if !ok {
			return m, nil
		}
		lastRecv, lastVer = later(lastRecv, inst.ReceivedAt), later(lastVer, inst.VerifiedAt)
		if inst.DeliveredAt.IsZero() {
			allDelivered = false
		}
		lastDel = later(lastDel, inst.DeliveredAt)
	}
	if st.VerifiedAt.IsZero() {
		st.ReceivedAt, st.VerifiedAt = lastRecv, lastVer
		m.Received, m.Verified = true, true
	}
	if allDelivered && st.DeliveredAt.IsZero() {
		st.DeliveredAt = lastDel
		m.Delivered = true
	}
	return m, nil
}

// Merge applies a manifest to the study: a study that grew (or whose instance
// changed its digest) after it was whole is not whole any more, and has to reach its
// milestones again. The record keeps the box it belongs to.
func (st *Study) Merge(m Manifest) {
	if st.StudyUID == "" {
		*st = Study{StudyUID: m.StudyUID, Device: m.Device, ManifestAt: m.At}
	}
	st.PatientID, st.Modality, st.Priority = m.PatientID, m.Modality, m.Priority
	if st.Expected == nil {
		st.Expected = map[string]string{}
	}
	for sop, sha := range m.Instances {
		if had, ok := st.Expected[sop]; !ok || had != sha {
			st.ReceivedAt, st.VerifiedAt, st.DeliveredAt = time.Time{}, time.Time{}, time.Time{}
		}
		st.Expected[sop] = sha
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
