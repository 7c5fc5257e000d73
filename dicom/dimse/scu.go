package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"lifeline/dicom"
)

// Context is a presentation context an SCU proposes: one abstract syntax and the
// transfer syntaxes it can send it in.
type Context struct {
	AbstractSyntax   string
	TransferSyntaxes []string
}

// SCUOptions tunes Dial. Zero fields take the defaults in brackets.
type SCUOptions struct {
	MaxPDU  uint32        // largest P-DATA-TF we accept [256 KiB]
	Timeout time.Duration // for negotiation and for each response [60 s]
	TLS     *tls.Config   // DICOM TLS when set
	Log     *slog.Logger
	// AsyncOperations proposes an Asynchronous Operations Window (PS3.7 D.3.3.3):
	// up to this many C-STOREs outstanding for StoreAll [1: one at a time].
	AsyncOperations int
}

// ContextsFor proposes one presentation context per SOP class and transfer syntax of
// files, each with exactly the file's own transfer syntax, so that nothing is
// converted on the way. The verification context comes first, for Echo.
func ContextsFor(files []dicom.File) []Context {
	out := []Context{{AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}}}
	seen := map[[2]string]bool{}
	for _, f := range files {
		k := [2]string{f.Meta.SOPClassUID, f.Meta.TransferSyntaxUID}
		if !seen[k] {
			seen[k] = true
			out = append(out, Context{AbstractSyntax: k[0], TransferSyntaxes: []string{k[1]}})
		}
	}
	return out
}

// MaxContexts is the most presentation contexts one association can carry (odd IDs).
const MaxContexts = 128

// Association is an SCU's open association.
type Association struct {
	c       *conn
	opts    SCUOptions
	msgID   uint16
	window  int                // C-STOREs StoreAll keeps outstanding (scu_async.go)
	byPair  map[[2]string]byte // abstract+transfer syntax → accepted context ID
	closed  bool
	log     *slog.Logger
	Remote  string
	PeerMax uint32 // the acceptor's maximum PDU length
}

// RejectedError is returned by Dial when the acceptor sends A-ASSOCIATE-RJ.
type RejectedError struct{ Result, Source, Reason byte }

func (e *RejectedError) Error() string {
	return fmt.Sprintf("association rejected (result %d, source %d, reason %d)", e.Result, e.Source, e.Reason)
}

// Dial opens an association to addr proposing contexts (at most MaxContexts).
func Dial(ctx context.Context, addr, callingAE, calledAE string, contexts []Context, opts SCUOptions) (*Association, error) {
	if opts.MaxPDU == 0 {
		opts.MaxPDU = 256 << 10
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if len(contexts) == 0 || len(contexts) > MaxContexts {
		return nil, fmt.Errorf("dimse: %d presentation contexts proposed, want 1 to %d", len(contexts), MaxContexts)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dimse: connect to %s: %w", addr, err)
	}
	nc = withQuickAck(nc)
	if opts.TLS != nil {
		cfg := opts.TLS
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("dimse: TLS handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	c := newConn(nc, opts.MaxPDU, opts.Timeout)
	rq := &AssociateRQ{Associate{CalledAE: calledAE, CallingAE: callingAE, MaxPDU: opts.MaxPDU,
		ApplicationContext: dicom.ApplicationContextName, AsyncWindow: asyncWindow(opts.AsyncOperations)}}
	proposed := map[byte]Context{}
	for i, pc := range contexts {
		id := byte(2*i + 1)
		proposed[id] = pc
		rq.Contexts = append(rq.Contexts, PresentationContext{ID: id, AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: pc.TransferSyntaxes})
	}
	nc.SetDeadline(time.Now().Add(opts.Timeout))
	if _, err := nc.Write(rq.Encode()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("dimse: send A-ASSOCIATE-RQ to %s: %w", addr, err)
	}
	p, err := c.pr.Read()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("dimse: read answer to A-ASSOCIATE-RQ from %s: %w", addr, err)
	}
	nc.SetDeadline(time.Time{})
	switch p := p.(type) {
	case *AssociateRJ:
		nc.Close()
		return nil, &RejectedError{Result: p.Result, Source: p.Source, Reason: p.Reason}
	case *Abort:
		nc.Close()
		return nil, &PeerAbortError{Source: p.Source, Reason: p.Reason}
	case *AssociateAC:
		a := &Association{c: c, opts: opts, byPair: map[[2]string]byte{}, log: opts.Log, Remote: addr, PeerMax: p.MaxPDU,
			window: agreedWindow(opts.AsyncOperations, p.AsyncWindow)}
		c.maxSend = p.MaxPDU
		for _, pc := range p.Contexts {
			prop, ok := proposed[pc.ID]
			if !ok || pc.Result != ResultAcceptance || len(pc.TransferSyntaxes) != 1 {
				continue
			}
			c.contexts[pc.ID] = acceptedContext{AbstractSyntax: prop.AbstractSyntax, TransferSyntax: pc.TransferSyntaxes[0]}
			a.byPair[[2]string{prop.AbstractSyntax, pc.TransferSyntaxes[0]}] = pc.ID
		}
		return a, nil
	default:
		c.abort(abortSourceUser, abortUnexpectedPDU)
		nc.Close()
		return nil, fmt.Errorf("dimse: unexpected PDU type 0x%02x in answer to A-ASSOCIATE-RQ", p.pduType())
	}
}

// Accepts reports whether the acceptor took a context for the SOP class in the
// transfer syntax.
func (a *Association) Accepts(sopClass, transferSyntax string) bool {
	_, ok := a.byPair[[2]string{sopClass, transferSyntax}]
	return ok
}

// ErrNoContext is returned by Store when no accepted context fits the file.
var ErrNoContext = errors.New("no accepted presentation context for this SOP class and transfer syntax")

// Echo sends C-ECHO and returns its status.
func (a *Association) Echo(ctx context.Context) (uint16, error) {
	id, ok := a.byPair[[2]string{dicom.VerificationSOPClass, dicom.ImplicitVRLittleEndian}]
	if !ok {
		return 0, fmt.Errorf("dimse: C-ECHO: %w", ErrNoContext)
	}
	a.msgID++
	cmd := &Command{Field: CEchoRQ, AffectedSOPClassUID: dicom.VerificationSOPClass, MessageID: a.msgID, DataSetType: noDataSet}
	return a.request(ctx, id, cmd, nil, 0)
}

// Store sends the data set of a Part 10 file unchanged with C-STORE and returns the
// status the acceptor answered. An error means the association is no longer usable.
func (a *Association) Store(ctx context.Context, f dicom.File) (uint16, error) {
	id, cmd, fh, err := a.storeRequest(f)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	return a.request(ctx, id, cmd, fh, f.DatasetSize)
}

// storeRequest finds f's presentation context and makes its C-STORE request under the
// next Message ID, with f open at its data set; the caller closes it.
func (a *Association) storeRequest(f dicom.File) (byte, *Command, *os.File, error) {
	id, ok := a.byPair[[2]string{f.Meta.SOPClassUID, f.Meta.TransferSyntaxUID}]
	if !ok {
		return 0, nil, nil, fmt.Errorf("dimse: C-STORE %s: %w", f.Path, ErrNoContext)
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return 0, nil, nil, err
	}
	if _, err := fh.Seek(f.DatasetOffset, io.SeekStart); err != nil {
		fh.Close()
		return 0, nil, nil, err
	}
	a.msgID++
	cmd := &Command{Field: CStoreRQ, AffectedSOPClassUID: f.Meta.SOPClassUID, AffectedSOPInstanceUID: f.Meta.SOPInstanceUID,
		MessageID: a.msgID, DataSetType: 0x0000}
	return id, cmd, fh, nil
}

// StoreDataset sends a data set from r (size bytes) with C-STORE.
func (a *Association) StoreDataset(ctx context.Context, sopClass, sopInstance, transferSyntax string, r io.Reader, size int64) (uint16, error) {
	id, ok := a.byPair[[2]string{sopClass, transferSyntax}]
	if !ok {
		return 0, fmt.Errorf("dimse: C-STORE %s: %w", sopInstance, ErrNoContext)
	}
	a.msgID++
	cmd := &Command{Field: CStoreRQ, AffectedSOPClassUID: sopClass, AffectedSOPInstanceUID: sopInstance,
		MessageID: a.msgID, DataSetType: 0x0000}
	return a.request(ctx, id, cmd, r, size)
}

func (a *Association) request(ctx context.Context, id byte, cmd *Command, data io.Reader, size int64) (uint16, error) {
	if a.closed {
		return 0, errors.New("dimse: association is closed")
	}
	stop := context.AfterFunc(ctx, func() { a.c.nc.SetDeadline(time.Now()) })
	defer stop()
	a.c.nc.SetWriteDeadline(time.Now().Add(a.opts.Timeout))
	err := a.c.writeCommand(id, cmd)
	if err == nil && data != nil {
		err = a.c.writeDataSet(id, &deadlineReader{r: data, c: a.c, d: a.opts.Timeout}, size)
	}
	if err != nil {
		a.fail()
		return 0, fmt.Errorf("dimse: send request to %s: %w", a.Remote, err)
	}
	for {
		rid, rsp, err := a.c.readCommand()
		if err != nil {
			a.fail()
			return 0, fmt.Errorf("dimse: read response from %s: %w", a.Remote, err)
		}
		if rsp.HasDataSet() {
			if _, _, err := a.c.readDataSet(rid, io.Discard); err != nil {
				a.fail()
				return 0, err
			}
		}
		if rsp.Field == cmd.Field|0x8000 && rsp.RespondedTo == cmd.MessageID {
			if rsp.Status != StatusSuccess {
				a.log.Warn("C-STORE/C-ECHO answered with a non-success status", "status", fmt.Sprintf("0x%04x", rsp.Status),
					"comment", rsp.ErrorComment, "sop_instance_uid", logUID(cmd.AffectedSOPInstanceUID))
			}
			return rsp.Status, nil
		}
		a.log.Warn("ignoring unexpected DIMSE message", "field", fmt.Sprintf("0x%04x", rsp.Field))
	}
}

// deadlineReader extends the write deadline as the data set goes out, so that the
// timeout bounds stalls rather than the whole transfer.
type deadlineReader struct {
	r io.Reader
	c *conn
	d time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.c.nc.SetWriteDeadline(time.Now().Add(d.d))
	return d.r.Read(p)
}

func (a *Association) fail() {
	if !a.closed {
		a.closed = true
		a.c.abort(abortSourceUser, abortNotSpecified)
		a.c.nc.Close()
	}
}

// Release ends the association in order (A-RELEASE-RQ, wait for A-RELEASE-RP).
func (a *Association) Release() error {
	if a.closed {
		return nil
	}
	a.closed = true
	defer a.c.nc.Close()
	a.c.nc.SetDeadline(time.Now().Add(a.opts.Timeout))
	if _, err := a.c.nc.Write(encodeRelease(typeReleaseRQ)); err != nil {
		return fmt.Errorf("dimse: send A-RELEASE-RQ: %w", err)
	}
	for {
		p, err := a.c.pr.Read()
		if err != nil {
			return fmt.Errorf("dimse: wait for A-RELEASE-RP: %w", err)
		}
		switch p.(type) {
		case *ReleaseRP:
			return nil
		case *Abort:
			return errors.New("dimse: peer aborted instead of releasing")
		}
	}
}

// Abort ends the association at once.
func (a *Association) Abort() { a.fail() }
