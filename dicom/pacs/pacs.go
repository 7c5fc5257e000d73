// Package pacs delivers DICOM instances that the hub has verified into a real PACS,
// by DICOMweb STOW-RS (PS3.18 §10.5) or by DIMSE C-STORE, behind one interface so the
// hub's delivery loop does not care which.
package pacs

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Instance is one Part 10 file on the hub's disk, ready to be delivered.
type Instance struct {
	SOPInstanceUID string
	SOPClassUID    string
	StudyUID       string
	TransferSyntax string
	Path           string
	Size           int64
}

// Deliverer sends instances to a PACS. Deliver returns one error per instance, in
// order: nil means the PACS confirmed it stored that instance. Implementations must be
// safe to call again with the same instance (the hub retries after failures, and a
// PACS keeps one copy per SOP Instance UID).
type Deliverer interface {
	Deliver(ctx context.Context, batch []Instance) []error
	// Target names the PACS for logs and status, e.g. "stow http://pacs/dicom-web".
	Target() string
}

// RefusedError says the PACS answered and refused the instance (as opposed to a
// transport failure). The hub keeps retrying both, but shows the difference.
type RefusedError struct {
	SOPInstanceUID string
	Reason         string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("PACS refused instance %s: %s", e.SOPInstanceUID, e.Reason)
}

// IsRefused reports whether err is a refusal by the PACS.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// ParseDIMSETarget splits "AET@host:port" into the called AE title and address.
func ParseDIMSETarget(s string) (aet, addr string, err error) {
	aet, addr, ok := strings.Cut(s, "@")
	if !ok || aet == "" || addr == "" {
		return "", "", fmt.Errorf("pacs: DIMSE target %q: want AET@host:port", s)
	}
	if len(aet) > 16 {
		return "", "", fmt.Errorf("pacs: DIMSE target %q: AE title longer than 16 characters", s)
	}
	if !strings.Contains(addr, ":") {
		return "", "", fmt.Errorf("pacs: DIMSE target %q: address has no port", s)
	}
	return aet, addr, nil
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}
