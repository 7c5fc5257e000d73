package pacs

import (
	"context"
	"fmt"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
)

// CStore delivers by DIMSE C-STORE: one association per batch, each instance sent in
// its own transfer syntax, unchanged.
type CStore struct {
	callingAE, calledAE, addr string
	opts                      dimse.SCUOptions
}

// NewCStore returns a Deliverer for target "AET@host:port", calling as callingAE.
func NewCStore(target, callingAE string, opts dimse.SCUOptions) (*CStore, error) {
	aet, addr, err := ParseDIMSETarget(target)
	if err != nil {
		return nil, err
	}
	if callingAE == "" || len(callingAE) > 16 {
		return nil, fmt.Errorf("pacs: calling AE title %q: want 1..16 characters", callingAE)
	}
	return &CStore{callingAE: callingAE, calledAE: aet, addr: addr, opts: opts}, nil
}

// Target implements Deliverer.
func (c *CStore) Target() string { return "c-store " + c.calledAE + "@" + c.addr }

// storeOK reports whether a C-STORE status means the PACS keeps the instance:
// success, or one of the warnings (PS3.4 B.2.3) under which it still stored it.
func storeOK(status uint16) bool {
	switch status {
	case 0x0000, 0xB000, 0xB006, 0xB007:
		return true
	}
	return false
}

// Deliver implements Deliverer.
func (c *CStore) Deliver(ctx context.Context, batch []Instance) []error {
	errs := make([]error, len(batch))
	files := make([]dicom.File, 0, len(batch))
	index := make([]int, 0, len(batch)) // files[k] is batch[index[k]]
	for i, inst := range batch {
		f, err := dicom.OpenFile(inst.Path)
		if err != nil {
			errs[i] = fmt.Errorf("c-store: %w", err)
			continue
		}
		if f.Meta.SOPInstanceUID != inst.SOPInstanceUID {
			errs[i] = fmt.Errorf("c-store: %s holds instance %s, not %s", inst.Path, f.Meta.SOPInstanceUID, inst.SOPInstanceUID)
			continue
		}
		files = append(files, f)
		index = append(index, i)
	}
	if len(files) == 0 {
		return errs
	}
	assoc, err := dimse.Dial(ctx, c.addr, c.callingAE, c.calledAE, dimse.ContextsFor(files), c.opts)
	if err != nil {
		for _, i := range index {
			errs[i] = fmt.Errorf("c-store: associate with %s: %w", c.Target(), err)
		}
		return errs
	}
	broken := false
	for k, f := range files {
		i := index[k]
		if broken {
			errs[i] = fmt.Errorf("c-store: association to %s broke before this instance", c.Target())
			continue
		}
		if !assoc.Accepts(f.Meta.SOPClassUID, f.Meta.TransferSyntaxUID) {
			errs[i] = &RefusedError{SOPInstanceUID: f.Meta.SOPInstanceUID,
				Reason: fmt.Sprintf("no presentation context accepted for %s in %s", f.Meta.SOPClassUID, f.Meta.TransferSyntaxUID)}
			continue
		}
		status, err := assoc.Store(ctx, f)
		switch {
		case err != nil:
			errs[i] = fmt.Errorf("c-store to %s: %w", c.Target(), err)
			broken = true
		case !storeOK(status):
			errs[i] = &RefusedError{SOPInstanceUID: f.Meta.SOPInstanceUID, Reason: fmt.Sprintf("C-STORE status 0x%04X", status)}
		}
	}
	if broken {
		assoc.Abort()
	} else {
		assoc.Release()
	}
	return errs
}
