package dimse

import (
	"context"
	"fmt"
	"io"
	"time"

	"lifeline/dicom"
)

// Window returns how many C-STOREs may be outstanding on the association: what the
// acceptor agreed to of SCUOptions.AsyncOperations, 1 when either side did not
// negotiate asynchronous operations.
func (a *Association) Window() int { return a.window }

// asyncWindow is what Dial proposes: invoke up to n, perform one (an SCU performs none).
func asyncWindow(n int) *AsyncWindow {
	if n <= 1 {
		return nil
	}
	return &AsyncWindow{Invoked: uint16(min(n, 1<<16-1)), Performed: 1}
}

// agreedWindow is the window an acceptor's answer leaves us: no more than we proposed,
// no more than it performs (0 there: no limit of its own).
func agreedWindow(proposed int, ac *AsyncWindow) int {
	if proposed <= 1 || ac == nil {
		return 1
	}
	if ac.Performed != 0 && int(ac.Performed) < proposed {
		return max(int(ac.Performed), 1)
	}
	return proposed
}

// StoreAll sends files with C-STORE, keeping up to Window() requests outstanding, and
// calls done with each file's status as its response arrives (in any order). An error
// means the association is no longer usable; done was called for every file answered.
func (a *Association) StoreAll(ctx context.Context, files []dicom.File, done func(f dicom.File, status uint16)) error {
	if a.closed {
		return fmt.Errorf("dimse: association is closed")
	}
	stop := context.AfterFunc(ctx, func() { a.c.nc.SetDeadline(time.Now()) })
	defer stop()
	waiting := map[uint16]dicom.File{} // by Message ID
	next := 0
	for next < len(files) || len(waiting) > 0 {
		for next < len(files) && len(waiting) < a.window {
			id, err := a.send(files[next])
			if err != nil {
				a.fail()
				return err
			}
			waiting[id] = files[next]
			next++
		}
		rid, rsp, err := a.c.readCommand()
		if err == nil && rsp.HasDataSet() {
			_, _, err = a.c.readDataSet(rid, io.Discard)
		}
		if err != nil {
			a.fail()
			return fmt.Errorf("dimse: read response from %s: %w", a.Remote, err)
		}
		f, ok := waiting[rsp.RespondedTo]
		if rsp.Field != CStoreRSP || !ok {
			a.log.Warn("ignoring unexpected DIMSE message", "field", fmt.Sprintf("0x%04x", rsp.Field), "responded_to", rsp.RespondedTo)
			continue
		}
		delete(waiting, rsp.RespondedTo)
		if rsp.Status != StatusSuccess {
			a.log.Warn("C-STORE answered with a non-success status", "status", fmt.Sprintf("0x%04x", rsp.Status),
				"comment", rsp.ErrorComment, "sop_instance_uid", logUID(f.Meta.SOPInstanceUID))
		}
		done(f, rsp.Status)
	}
	return nil
}

// send writes one C-STORE request and its data set and returns its Message ID.
func (a *Association) send(f dicom.File) (uint16, error) {
	id, cmd, fh, err := a.storeRequest(f)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	a.c.nc.SetWriteDeadline(time.Now().Add(a.opts.Timeout))
	if err := a.c.writeCommand(id, cmd); err != nil {
		return 0, fmt.Errorf("dimse: send request to %s: %w", a.Remote, err)
	}
	if err := a.c.writeDataSet(id, &deadlineReader{r: fh, c: a.c, d: a.opts.Timeout}, f.DatasetSize); err != nil {
		return 0, fmt.Errorf("dimse: send request to %s: %w", a.Remote, err)
	}
	return cmd.MessageID, nil
}
