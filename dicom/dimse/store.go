package dimse

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"lifeline/dicom"
)

// store receives one C-STORE data set into the sink and answers with its status.
func (a *scpAssoc) store(ctxID byte, pc acceptedContext, cmd *Command) error {
	rsp := &Command{Field: CStoreRSP, AffectedSOPClassUID: cmd.AffectedSOPClassUID, RespondedTo: cmd.MessageID,
		DataSetType: noDataSet, AffectedSOPInstanceUID: cmd.AffectedSOPInstanceUID}
	log := a.log.With("sop_instance_uid", logUID(cmd.AffectedSOPInstanceUID), "sop_class_uid", logUID(cmd.AffectedSOPClassUID))
	if !cmd.HasDataSet() {
		return fmt.Errorf("%w: C-STORE-RQ without a data set", ErrMalformedCommand)
	}
	var w dicom.InstanceWriter
	switch {
	case !dicom.ValidUID(cmd.AffectedSOPInstanceUID) || !dicom.ValidUID(cmd.AffectedSOPClassUID):
		// A UID that is not one (PS3.5 9.1) cannot be indexed, named on disk or
		// forwarded: refuse it now rather than acknowledge what will never leave.
		rsp.Status, rsp.ErrorComment = StatusDataSetMismatch, "SOP Class or Instance UID is not a valid UID"
		a.s.connWarn(log, "C-STORE refused: invalid UID in the request (PS3.5 9.1: up to 64 digits and dots)",
			"sop_instance_uid_length", len(cmd.AffectedSOPInstanceUID))
		a.s.fail("invalid_uid")
	case pc.AbstractSyntax == dicom.VerificationSOPClass || cmd.AffectedSOPClassUID != pc.AbstractSyntax:
		rsp.Status, rsp.ErrorComment = StatusSOPClassNotSupported, "SOP class does not match the presentation context"
		a.s.connWarn(log, "C-STORE refused: SOP class does not match its presentation context", "context_abstract_syntax", pc.AbstractSyntax)
		a.s.fail("sop_class_refused")
	default:
		var err error
		w, err = a.s.sink.Begin(dicom.Incoming{SOPClassUID: cmd.AffectedSOPClassUID, SOPInstanceUID: cmd.AffectedSOPInstanceUID,
			TransferSyntaxUID: pc.TransferSyntax, CallingAE: a.callingAE, CalledAE: a.calledAE})
		if err != nil {
			rsp.Status, rsp.ErrorComment = a.statusOf(log, err)
		}
	}
	var sink io.Writer = io.Discard
	if w != nil {
		sink = w
	}
	n, werr, err := a.c.readDataSet(ctxID, sink)
	if err != nil {
		if w != nil {
			w.Abort()
		}
		a.s.connWarn(log, "C-STORE interrupted; nothing stored", "err", err, "bytes", n)
		return err
	}
	finish := func() error {
		if w != nil {
			if werr != nil {
				w.Abort()
				rsp.Status, rsp.ErrorComment = a.statusOf(log, werr)
			} else if err := commitDurable(w); err != nil {
				rsp.Status, rsp.ErrorComment = a.statusOf(log, err)
			} else {
				rsp.Status = StatusSuccess
				a.s.m.instances.Inc()
				a.s.m.bytes.Add(float64(n))
				a.s.stats.instances.Add(1)
				a.s.stats.bytes.Add(uint64(n))
			}
		}
		return a.respond(ctxID, rsp)
	}
	if w == nil || werr != nil || !a.ops.async() {
		return finish()
	}
	// The SCU may send its next request before this response: make this instance
	// durable and answer it while the reader goes on (async.go).
	a.ops.start(finish)
	return nil
}

// durableCommitter is a writer that can answer as soon as the instance is durable,
// leaving its indexing to follow (the spool's CommitDurable).
type durableCommitter interface{ CommitDurable() error }

// commitDurable commits w for a C-STORE response: the success it allows promises that
// the instance survives a crash or power cut, nothing more.
func commitDurable(w dicom.InstanceWriter) error {
	if d, ok := w.(durableCommitter); ok {
		return d.CommitDurable()
	}
	return w.Commit()
}

// statusOf maps a sink error to a DIMSE status, logs it and counts the failure.
func (a *scpAssoc) statusOf(log *slog.Logger, err error) (uint16, string) {
	switch {
	case errors.Is(err, dicom.ErrOutOfResources):
		log.Error("C-STORE refused: spool is full", "err", err)
		a.s.fail("out_of_resources")
		return StatusOutOfResources, "spool full"
	case errors.Is(err, dicom.ErrSOPMismatch):
		a.s.connWarn(log, "C-STORE refused: data set does not match the request", "err", err)
		a.s.fail("dataset_mismatch")
		return StatusDataSetMismatch, "data set does not match SOP class or instance"
	case errors.Is(err, dicom.ErrMalformed):
		a.s.connWarn(log, "C-STORE refused: data set does not parse", "err", err)
		a.s.fail("malformed_dataset")
		return StatusCannotUnderstand, "data set does not parse"
	}
	log.Error("C-STORE failed: cannot store the instance", "err", err)
	a.s.fail("storage_error")
	return StatusOutOfResources, "cannot store"
}
