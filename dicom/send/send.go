package send

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
)

// Options says where and how to send.
type Options struct {
	Addr      string        // host:port of the receiver
	CallingAE string        // ours
	CalledAE  string        // the receiver's
	TLS       *tls.Config   // DICOM TLS when set
	Timeout   time.Duration // per response [60 s]
	Log       *slog.Logger
}

// Outcome is the result of sending one instance.
type Outcome struct {
	Instance Instance
	Status   uint16 // DIMSE status when the receiver answered
	Err      error  // set when the instance was not stored
}

// Sent reports whether the receiver stored the instance.
func (o Outcome) Sent() bool { return o.Err == nil }

// Send sends every instance, each in its own transfer syntax, over as few
// associations as the 128-context limit allows, and calls done after each one.
// A broken association is re-opened for the instances still to go.
func Send(ctx context.Context, instances []Instance, opts Options, done func(Outcome)) error {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	for len(instances) > 0 {
		batch, rest := splitByContexts(instances)
		instances = rest
		if err := sendBatch(ctx, batch, opts, done); err != nil {
			for _, in := range instances {
				done(Outcome{Instance: in, Err: err})
			}
			return err
		}
	}
	return nil
}

// splitByContexts returns the longest prefix needing at most MaxContexts-1 contexts
// (one stays for verification).
func splitByContexts(in []Instance) ([]Instance, []Instance) {
	seen := map[[2]string]bool{}
	for i, x := range in {
		k := [2]string{x.Meta.SOPClassUID, x.Meta.TransferSyntaxUID}
		if !seen[k] && len(seen) == dimse.MaxContexts-1 {
			return in[:i], in[i:]
		}
		seen[k] = true
	}
	return in, nil
}

func sendBatch(ctx context.Context, batch []Instance, opts Options, done func(Outcome)) error {
	files := make([]dicom.File, len(batch))
	for i, in := range batch {
		files[i] = in.File
	}
	contexts := dimse.ContextsFor(files)
	scu := dimse.SCUOptions{Timeout: opts.Timeout, TLS: opts.TLS, Log: opts.Log}
	var a *dimse.Association
	redials := 0
	defer func() {
		if a != nil {
			a.Release()
		}
	}()
	for i := 0; i < len(batch); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		in := batch[i]
		if a == nil {
			var err error
			a, err = dimse.Dial(ctx, opts.Addr, opts.CallingAE, opts.CalledAE, contexts, scu)
			if err != nil {
				return fmt.Errorf("open association with %s: %w", opts.Addr, err)
			}
		}
		if !a.Accepts(in.Meta.SOPClassUID, in.Meta.TransferSyntaxUID) {
			done(Outcome{Instance: in, Err: fmt.Errorf("receiver refused SOP class %s in transfer syntax %s", in.Meta.SOPClassUID, in.Meta.TransferSyntaxUID)})
			continue
		}
		status, err := a.Store(ctx, in.File)
		switch {
		case err != nil:
			a = nil
			redials++
			if redials > 3 || errors.Is(err, context.Canceled) {
				done(Outcome{Instance: in, Err: err})
				return fmt.Errorf("association with %s keeps failing: %w", opts.Addr, err)
			}
			opts.Log.Warn("association broke; reconnecting", "err", err)
			i-- // send it again on a new association
		case status == dimse.StatusSuccess || status&0xF000 == 0xB000:
			// 0xBxxx are warnings: the receiver stored the instance.
			redials = 0
			done(Outcome{Instance: in, Status: status})
		default:
			redials = 0
			done(Outcome{Instance: in, Status: status, Err: fmt.Errorf("receiver answered status 0x%04X (%s)", status, StatusText(status))})
		}
	}
	return nil
}

// StatusText names the DIMSE statuses a C-STORE SCP answers.
func StatusText(s uint16) string {
	switch {
	case s == 0:
		return "success"
	case s == 0x0122:
		return "SOP class not supported"
	case s == 0x0211:
		return "unrecognized operation"
	case s&0xFF00 == 0xA700:
		return "out of resources"
	case s&0xFF00 == 0xA900:
		return "data set does not match SOP class"
	case s&0xF000 == 0xC000:
		return "cannot understand"
	case s&0xF000 == 0xB000:
		return "warning"
	}
	return "failure"
}
