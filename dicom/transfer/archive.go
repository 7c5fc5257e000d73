package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"lifeline/internal/durable"
)

// Buckets of the hub's durable store.
const (
	bucketUploads   = "transfer/uploads"   // upload ID → uploadRecord
	bucketInstances = "transfer/instances" // SOP Instance UID → InstanceRecord (the archive index)
	bucketStudies   = "transfer/studies"   // Study Instance UID → studyRecord
	bucketDelivery  = "transfer/delivery"  // SOP Instance UID → "" while a PACS delivery is owed
)

// uploadRecord is the hub's durable state of one upload.
type uploadRecord struct {
	ID             string    `json:"id"`
	Device         string    `json:"device"`
	SOPInstanceUID string    `json:"sop_instance_uid"`
	SOPClassUID    string    `json:"sop_class_uid,omitempty"`
	StudyUID       string    `json:"study_uid"`
	TransferSyntax string    `json:"transfer_syntax,omitempty"`
	Length         int64     `json:"length"`
	SHA256         string    `json:"sha256"` // hex
	Offset         int64     `json:"offset"` // bytes fsynced in the partial file
	Complete       bool      `json:"complete"`
	CreatedAt      time.Time `json:"created_at"`
}

// InstanceRecord is one verified instance in the hub's archive index.
type InstanceRecord struct {
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
}

// studyRecord is the hub's view of one study.
type studyRecord struct {
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

func getJSONTx(tx *durable.Tx, bucket, key string, v any) (bool, error) {
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		return false, nil
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("transfer: stored %s/%s: %w", bucket, key, err)
	}
	return true, nil
}

func putJSONTx(tx *durable.Tx, bucket, key string, v any) error {
	b, err := durable.Bucket(tx, bucket)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// archivePath is where a verified instance lives: one directory per study. Both UIDs
// were checked by ValidUID, so they cannot climb out of dir.
func archivePath(dir, studyUID, sopUID string) string {
	return filepath.Join(dir, "studies", studyUID, sopUID+".dcm")
}

func partialPath(dir, uploadID string) string {
	return filepath.Join(dir, "uploads", uploadID+".part")
}

// moveIntoArchive renames a verified partial file to its archive path durably: the
// file was fsynced chunk by chunk, so only the two directories need syncing.
func moveIntoArchive(partial, final string) error {
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return fmt.Errorf("transfer: archive directory: %w", err)
	}
	if err := os.Rename(partial, final); err != nil {
		return fmt.Errorf("transfer: move %s into the archive: %w", partial, err)
	}
	if err := durable.SyncDir(filepath.Dir(final)); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(partial))
}

// studyProgress recomputes a study's timestamps from its instances, inside tx. It
// reports which milestones this call reached, for the audit log.
func studyProgress(tx *durable.Tx, st *studyRecord) (received, verified, delivered bool, err error) {
	if len(st.Expected) == 0 {
		return false, false, false, nil
	}
	var lastRecv, lastVer, lastDel time.Time
	allStored, allDelivered := true, true
	for sop := range st.Expected {
		var rec InstanceRecord
		ok, err := getJSONTx(tx, bucketInstances, sop, &rec)
		if err != nil {
			return false, false, false, err
		}
		if !ok {
			allStored, allDelivered = false, false
			break
		}
		lastRecv = later(lastRecv, rec.ReceivedAt)
		lastVer = later(lastVer, rec.VerifiedAt)
		if rec.DeliveredAt.IsZero() {
			allDelivered = false
		}
		lastDel = later(lastDel, rec.DeliveredAt)
	}
	if allStored && st.VerifiedAt.IsZero() {
		st.ReceivedAt, st.VerifiedAt = lastRecv, lastVer
		received, verified = true, true
	}
	if allDelivered && st.DeliveredAt.IsZero() {
		st.DeliveredAt = lastDel
		delivered = true
	}
	return received, verified, delivered, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// errNotStored is returned when an instance the caller asked for is not in the archive.
var errNotStored = errors.New("transfer: instance not in the archive")

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }
