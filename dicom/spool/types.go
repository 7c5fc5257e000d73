// Package spool keeps the DICOM instances the box has received until the hub has them:
// Part 10 files on disk, an index of studies in the durable store, and the queue of
// studies that are complete and ready to forward.
package spool

import "time"

// ReadyQueue is the durable queue (see internal/durable) into which the spool pushes a
// JSON-encoded Study when the study is complete (no new instance for the quiet period).
// The forwarder consumes it: Peek, forward, then Ack.
const ReadyQueue = "study-ready"

// Instance describes one stored SOP instance.
type Instance struct {
	SOPInstanceUID string    `json:"sop_instance_uid"`
	SOPClassUID    string    `json:"sop_class_uid"`
	StudyUID       string    `json:"study_uid"`
	SeriesUID      string    `json:"series_uid"`
	TransferSyntax string    `json:"transfer_syntax"`
	PatientID      string    `json:"patient_id"`
	PatientName    string    `json:"patient_name"`
	Modality       string    `json:"modality"`
	CallingAE      string    `json:"calling_ae"`
	Size           int64     `json:"size"`   // bytes of the Part 10 file
	SHA256         string    `json:"sha256"` // hex digest of the Part 10 file
	ReceivedAt     time.Time `json:"received_at"`
	Path           string    `json:"path"` // absolute path of the Part 10 file in the spool
}

// Study is a complete study as queued for forwarding.
type Study struct {
	StudyUID    string     `json:"study_uid"`
	PatientID   string     `json:"patient_id"`
	PatientName string     `json:"patient_name"`
	Modality    string     `json:"modality"`
	CallingAE   string     `json:"calling_ae"`
	Instances   []Instance `json:"instances"`
	CompletedAt time.Time  `json:"completed_at"`
}
