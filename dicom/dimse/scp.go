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
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"lifeline/dicom"
)

// SCPConfig configures the C-STORE SCP. Zero fields take the defaults in brackets.
type SCPConfig struct {
	AETitle          string        // our (called) AE title [LIFELINE]
	CallingAEs       []string      // calling AE titles allowed; empty allows any
	SOPClasses       []string      // storage SOP classes accepted [dicom.StorageSOPClasses]
	TransferSyntaxes []string      // transfer syntaxes accepted [dicom.StorableTransferSyntaxes]
	MaxPDU           uint32        // largest P-DATA-TF we accept [256 KiB]
	MaxAssociations  int           // concurrent associations [8]
	ARTIM            time.Duration // wait for A-ASSOCIATE-RQ, and for close after release [30 s]
	IdleTimeout      time.Duration // longest silence inside an association [2 min]
	ShutdownGrace    time.Duration // time a message in progress gets to finish on shutdown [10 s]
	TLS              *tls.Config   // DICOM TLS (PS3.15 B.1) when set
}

func (c *SCPConfig) defaults() {
	if c.AETitle == "" {
		c.AETitle = "LIFELINE"
	}
	if c.SOPClasses == nil {
		c.SOPClasses = dicom.StorageSOPClasses
	}
	if c.TransferSyntaxes == nil {
		c.TransferSyntaxes = dicom.StorableTransferSyntaxes
	}
	if c.MaxPDU == 0 {
		c.MaxPDU = 256 << 10
	}
	if c.MaxAssociations <= 0 {
		c.MaxAssociations = 8
	}
	if c.ARTIM <= 0 {
		c.ARTIM = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
}

// SCP is the box's C-STORE and C-ECHO service class provider.
type SCP struct {
	cfg     SCPConfig
	sink    dicom.Sink
	log     *slog.Logger
	m       *metrics
	classes map[string]bool
	syntax  map[string]bool

	addr   atomic.Value // string: the listening address
	active atomic.Int64
	total  atomic.Uint64
	stats  stats

	mu    sync.Mutex
	conns map[*conn]struct{}
}

// NewSCP returns an SCP that stores what it receives into sink. Metrics are
// registered on reg when it is not nil.
func NewSCP(cfg SCPConfig, sink dicom.Sink, log *slog.Logger, reg Registerer) (*SCP, error) {
	cfg.defaults()
	if len(cfg.AETitle) > 16 {
		return nil, fmt.Errorf("dimse: AE title %q longer than 16 characters", cfg.AETitle)
	}
	if log == nil {
		log = slog.Default()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &SCP{cfg: cfg, sink: sink, log: log.With("service", "dicom-scp"), m: m,
		classes: map[string]bool{}, syntax: map[string]bool{}, conns: map[*conn]struct{}{}}
	for _, c := range cfg.SOPClasses {
		s.classes[c] = true
	}
	for _, t := range cfg.TransferSyntaxes {
		s.syntax[t] = true
	}
	s.addr.Store("")
	return s, nil
}

// Serve accepts associations on ln until ctx is cancelled. Then it stops accepting,
// lets each association finish the message in progress (up to ShutdownGrace), aborts
// them, and returns nil once all are closed.
func (s *SCP) Serve(ctx context.Context, ln net.Listener) error {
	s.addr.Store(ln.Addr().String())
	s.log.Info("DICOM SCP listening", "addr", ln.Addr().String(), "ae_title", s.cfg.AETitle, "tls", s.cfg.TLS != nil)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	var err error
	for {
		nc, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("dimse: accept on %s: %w", ln.Addr(), aerr)
			}
			break
		}
		nc = withQuickAck(nc)
		if s.cfg.TLS != nil {
			nc = tls.Server(nc, s.cfg.TLS)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, nc)
		}()
	}
	ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.stop(s.cfg.ShutdownGrace)
	}
	s.mu.Unlock()
	wg.Wait()
	return err
}

// serveConn runs one association from transport connect to close.
func (s *SCP) serveConn(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	remote := nc.RemoteAddr().String()
	log := s.log.With("remote", remote)
	c := newConn(nc, s.cfg.MaxPDU, s.cfg.IdleTimeout)

	// ARTIM: the peer must open the association promptly (PS3.8 9.1.5).
	nc.SetReadDeadline(time.Now().Add(s.cfg.ARTIM))
	if tc, ok := nc.(*tls.Conn); ok {
		if err := tc.HandshakeContext(ctx); err != nil {
			log.Warn("DICOM TLS handshake failed", "err", err)
			s.fail("tls_handshake")
			return
		}
	}
	p, err := c.pr.Read()
	if errors.Is(err, io.EOF) {
		// Connected and closed without a byte: a port check, not a DICOM peer.
		log.Debug("connection closed before any PDU")
		return
	}
	if err != nil {
		log.Warn("no valid A-ASSOCIATE-RQ; closing", "err", err)
		s.fail(reasonOf(err))
		if errors.Is(err, ErrMalformedPDU) {
			c.abort(abortSourceProvider, abortInvalidParameter)
		}
		return
	}
	rq, ok := p.(*AssociateRQ)
	if !ok {
		log.Warn("first PDU is not A-ASSOCIATE-RQ; aborting", "type", p.pduType())
		s.fail("protocol_error")
		c.abort(abortSourceProvider, abortUnexpectedPDU)
		return
	}
	log = log.With("calling_ae", rq.CallingAE, "called_ae", rq.CalledAE)
	if rj := s.admit(rq); rj != nil {
		nc.SetWriteDeadline(time.Now().Add(s.cfg.ARTIM))
		nc.Write(rj.Encode())
		log.Warn("association rejected", "reason", rjText(rj))
		s.m.associations.WithLabelValues("rejected").Inc()
		s.fail("association_rejected")
		return
	}
	if s.active.Add(1) > int64(s.cfg.MaxAssociations) {
		s.active.Add(-1)
		rj := &AssociateRJ{Result: rjTransient, Source: rjSourcePresentation, Reason: rjLocalLimitExceeded}
		nc.SetWriteDeadline(time.Now().Add(s.cfg.ARTIM))
		nc.Write(rj.Encode())
		log.Warn("association rejected: too many concurrent associations", "limit", s.cfg.MaxAssociations)
		s.m.associations.WithLabelValues("rejected").Inc()
		s.fail("too_many_associations")
		return
	}
	s.total.Add(1)
	s.m.active.Inc()
	s.mu.Lock()
	s.conns[c] = struct{}{}
	if ctx.Err() != nil {
		c.stopping = true
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.active.Add(-1)
		s.m.active.Dec()
	}()

	ac := s.negotiate(rq, c)
	c.maxSend = rq.MaxPDU
	nc.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
	if _, err := nc.Write(ac.Encode()); err != nil {
		log.Warn("cannot send A-ASSOCIATE-AC", "err", err)
		return
	}
	s.m.associations.WithLabelValues("accepted").Inc()
	log.Info("association accepted", "contexts", len(c.contexts), "proposed", len(rq.Contexts), "peer_max_pdu", rq.MaxPDU)
	a := &scpAssoc{s: s, c: c, log: log, callingAE: rq.CallingAE, calledAE: rq.CalledAE}
	a.run()
}

// admit checks the application context and AE titles; it returns nil to accept.
func (s *SCP) admit(rq *AssociateRQ) *AssociateRJ {
	switch {
	case rq.ProtocolVersion&1 == 0:
		return &AssociateRJ{Result: rjPermanent, Source: rjSourceACSE, Reason: rjProtocolVersion}
	case rq.ApplicationContext != dicom.ApplicationContextName:
		return &AssociateRJ{Result: rjPermanent, Source: rjSourceUser, Reason: rjAppContextNotSupported}
	case rq.CalledAE != s.cfg.AETitle:
		return &AssociateRJ{Result: rjPermanent, Source: rjSourceUser, Reason: rjCalledAENotRecognized}
	case len(s.cfg.CallingAEs) > 0 && !slices.Contains(s.cfg.CallingAEs, rq.CallingAE):
		return &AssociateRJ{Result: rjPermanent, Source: rjSourceUser, Reason: rjCallingAENotRecognized}
	}
	return nil
}

func rjText(rj *AssociateRJ) string {
	switch {
	case rj.Source == rjSourceUser && rj.Reason == rjCalledAENotRecognized:
		return "called AE title is not ours"
	case rj.Source == rjSourceUser && rj.Reason == rjCallingAENotRecognized:
		return "calling AE title not in the allow-list"
	case rj.Source == rjSourceUser && rj.Reason == rjAppContextNotSupported:
		return "application context not supported"
	case rj.Source == rjSourceACSE:
		return "protocol version not supported"
	}
	return fmt.Sprintf("source %d reason %d", rj.Source, rj.Reason)
}

// negotiate answers each proposed presentation context. Of the transfer syntaxes
// proposed, the first one we can store unchanged wins: the requestor lists its
// preferred (usually its native) syntax first, so this avoids conversion on its side.
func (s *SCP) negotiate(rq *AssociateRQ, c *conn) *AssociateAC {
	ac := &AssociateAC{Associate{CalledAE: rq.CalledAE, CallingAE: rq.CallingAE,
		ApplicationContext: dicom.ApplicationContextName, MaxPDU: s.cfg.MaxPDU}}
	for _, pc := range rq.Contexts {
		ans := PresentationContext{ID: pc.ID, Result: ResultAbstractSyntaxRejected,
			TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}}
		verification := pc.AbstractSyntax == dicom.VerificationSOPClass
		if verification || s.classes[pc.AbstractSyntax] {
			ans.Result = ResultTransferSyntaxesRejected
			for _, ts := range pc.TransferSyntaxes {
				if s.syntax[ts] || (verification && (ts == dicom.ImplicitVRLittleEndian || ts == dicom.ExplicitVRLittleEndian)) {
					ans.Result = ResultAcceptance
					ans.TransferSyntaxes = []string{ts}
					c.contexts[pc.ID] = acceptedContext{AbstractSyntax: pc.AbstractSyntax, TransferSyntax: ts}
					break
				}
			}
		}
		ac.Contexts = append(ac.Contexts, ans)
	}
	return ac
}

// scpAssoc is the data phase of one accepted association.
type scpAssoc struct {
	s         *SCP
	c         *conn
	log       *slog.Logger
	callingAE string
	calledAE  string
}

func (a *scpAssoc) run() {
	for {
		a.c.setBusy(false)
		if a.c.isStopping() {
			a.log.Info("aborting association: service is shutting down")
			a.c.abort(abortSourceProvider, abortNotSpecified)
			a.s.m.associations.WithLabelValues("aborted").Inc()
			return
		}
		ctxID, cmd, err := a.c.readCommand()
		if err != nil {
			a.end(err)
			return
		}
		if err := a.dispatch(ctxID, cmd); err != nil {
			a.end(err)
			return
		}
	}
}

// end closes the association after a release request, a peer abort or an error.
func (a *scpAssoc) end(err error) {
	var pa *PeerAbortError
	switch {
	case errors.Is(err, errReleaseRequested):
		a.c.nc.SetWriteDeadline(time.Now().Add(a.s.cfg.ARTIM))
		a.c.nc.Write(encodeRelease(typeReleaseRP))
		// ARTIM: give the requestor the chance to close first, as PS3.8 prefers.
		a.c.nc.SetReadDeadline(time.Now().Add(a.s.cfg.ARTIM))
		io.Copy(io.Discard, io.LimitReader(a.c.nc, 1<<16))
		a.log.Info("association released")
		a.s.m.associations.WithLabelValues("released").Inc()
	case errors.As(err, &pa):
		a.log.Warn("association aborted by peer", "source", pa.Source, "reason", pa.Reason)
		a.s.m.associations.WithLabelValues("aborted").Inc()
		a.s.fail("peer_abort")
	case a.c.isStopping() && errors.Is(err, os.ErrDeadlineExceeded):
		a.log.Info("aborting association: service is shutting down")
		a.c.abort(abortSourceProvider, abortNotSpecified)
		a.s.m.associations.WithLabelValues("aborted").Inc()
	case errors.Is(err, os.ErrDeadlineExceeded):
		a.log.Warn("aborting association: peer silent too long", "idle_timeout", a.s.cfg.IdleTimeout)
		a.c.abort(abortSourceProvider, abortNotSpecified)
		a.s.m.associations.WithLabelValues("aborted").Inc()
		a.s.fail("timeout")
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		a.log.Warn("peer closed the connection without releasing the association")
		a.s.m.associations.WithLabelValues("aborted").Inc()
		a.s.fail("connection_lost")
	case errors.Is(err, ErrMalformedPDU) || errors.Is(err, ErrMalformedCommand):
		a.log.Warn("aborting association: protocol error", "err", err)
		a.c.abort(abortSourceProvider, abortInvalidParameter)
		a.s.m.associations.WithLabelValues("aborted").Inc()
		a.s.fail("protocol_error")
	default:
		a.log.Warn("association failed", "err", err)
		a.c.abort(abortSourceProvider, abortNotSpecified)
		a.s.m.associations.WithLabelValues("aborted").Inc()
		a.s.fail("connection_lost")
	}
}

// dispatch serves one DIMSE request; an error ends the association.
func (a *scpAssoc) dispatch(ctxID byte, cmd *Command) error {
	pc := a.c.contexts[ctxID]
	switch cmd.Field {
	case CEchoRQ:
		if cmd.HasDataSet() {
			if _, _, err := a.c.readDataSet(ctxID, io.Discard); err != nil {
				return err
			}
		}
		return a.respond(ctxID, &Command{Field: CEchoRSP, AffectedSOPClassUID: dicom.VerificationSOPClass,
			RespondedTo: cmd.MessageID, DataSetType: noDataSet, Status: StatusSuccess})
	case CStoreRQ:
		return a.store(ctxID, pc, cmd)
	}
	a.log.Warn("refusing unsupported DIMSE operation", "command_field", fmt.Sprintf("0x%04x", cmd.Field))
	if cmd.HasDataSet() {
		if _, _, err := a.c.readDataSet(ctxID, io.Discard); err != nil {
			return err
		}
	}
	a.s.fail("unsupported_operation")
	return a.respond(ctxID, &Command{Field: cmd.Field | 0x8000, AffectedSOPClassUID: cmd.AffectedSOPClassUID,
		RespondedTo: cmd.MessageID, DataSetType: noDataSet, Status: StatusUnrecognizedOp})
}

func (a *scpAssoc) respond(ctxID byte, rsp *Command) error {
	a.c.nc.SetWriteDeadline(time.Now().Add(a.s.cfg.IdleTimeout))
	return a.c.writeCommand(ctxID, rsp)
}

// store receives one C-STORE data set into the sink and answers with its status.
func (a *scpAssoc) store(ctxID byte, pc acceptedContext, cmd *Command) error {
	rsp := &Command{Field: CStoreRSP, AffectedSOPClassUID: cmd.AffectedSOPClassUID, RespondedTo: cmd.MessageID,
		DataSetType: noDataSet, AffectedSOPInstanceUID: cmd.AffectedSOPInstanceUID}
	log := a.log.With("sop_instance_uid", cmd.AffectedSOPInstanceUID, "sop_class_uid", cmd.AffectedSOPClassUID)
	if !cmd.HasDataSet() {
		return fmt.Errorf("%w: C-STORE-RQ without a data set", ErrMalformedCommand)
	}
	var w dicom.InstanceWriter
	switch {
	case pc.AbstractSyntax == dicom.VerificationSOPClass || cmd.AffectedSOPClassUID != pc.AbstractSyntax:
		rsp.Status, rsp.ErrorComment = StatusSOPClassNotSupported, "SOP class does not match the presentation context"
		log.Warn("C-STORE refused: SOP class does not match its presentation context", "context_abstract_syntax", pc.AbstractSyntax)
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
		log.Warn("C-STORE interrupted; nothing stored", "err", err, "bytes", n)
		return err
	}
	if w != nil {
		if werr != nil {
			w.Abort()
			rsp.Status, rsp.ErrorComment = a.statusOf(log, werr)
		} else if err := w.Commit(); err != nil {
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

// statusOf maps a sink error to a DIMSE status, logs it and counts the failure.
func (a *scpAssoc) statusOf(log *slog.Logger, err error) (uint16, string) {
	switch {
	case errors.Is(err, dicom.ErrOutOfResources):
		log.Error("C-STORE refused: spool is full", "err", err)
		a.s.fail("out_of_resources")
		return StatusOutOfResources, "spool full"
	case errors.Is(err, dicom.ErrSOPMismatch):
		log.Warn("C-STORE refused: data set does not match the request", "err", err)
		a.s.fail("dataset_mismatch")
		return StatusDataSetMismatch, "data set does not match SOP class or instance"
	case errors.Is(err, dicom.ErrMalformed):
		log.Warn("C-STORE refused: data set does not parse", "err", err)
		a.s.fail("malformed_dataset")
		return StatusCannotUnderstand, "data set does not parse"
	}
	log.Error("C-STORE failed: cannot store the instance", "err", err)
	a.s.fail("storage_error")
	return StatusOutOfResources, "cannot store"
}

func (s *SCP) fail(reason string) {
	s.m.failures.WithLabelValues(reason).Inc()
	s.stats.fail(reason)
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrMalformedPDU):
		return "protocol_error"
	}
	return "connection_lost"
}
