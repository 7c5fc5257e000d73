package dicom

import (
	"errors"
	"io"
	"time"
)

// Incoming describes an instance a peer is about to send, as its C-STORE request and
// the negotiated presentation context announce it.
type Incoming struct {
	SOPClassUID       string
	SOPInstanceUID    string
	TransferSyntaxUID string
	CallingAE         string
	CalledAE          string
}

// Sink is where received instances go: the spool on the box. Begin is called before
// the dataset arrives, so a full spool can refuse early with ErrOutOfResources.
type Sink interface {
	Begin(in Incoming) (InstanceWriter, error)
}

// InstanceWriter receives the dataset bytes exactly as they came off the wire.
// Commit makes the instance durable (or finds it already stored) and returns nil only
// then; after Commit or Abort the writer is done.
type InstanceWriter interface {
	io.Writer
	Commit() error
	Abort()
}

// Errors a Sink returns; the SCP maps them to DIMSE statuses.
var (
	// ErrOutOfResources: the spool has no room (0xA700).
	ErrOutOfResources = errors.New("out of resources: spool is full")
	// ErrSOPMismatch: the dataset's SOP Class or Instance differs from the request (0xA900).
	ErrSOPMismatch = errors.New("dataset does not match SOP class")
)

// StudySummary is one recently received study as the status page shows it.
type StudySummary struct {
	StudyUID      string    `json:"study_uid"`
	PatientID     string    `json:"patient_id"`
	Modality      string    `json:"modality"`
	CallingAE     string    `json:"calling_ae"`
	Instances     int       `json:"instances"`
	Bytes         int64     `json:"bytes"`
	FirstReceived time.Time `json:"first_received"`
	LastReceived  time.Time `json:"last_received"`
	Queued        bool      `json:"queued"` // handed to the forwarder
}
