package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"lifeline/dicom"
)

// SCPConfig configures the C-STORE SCP. Zero fields take the defaults in brackets.
type SCPConfig struct {
	AETitle          string   // our (called) AE title [LIFELINE]
	CallingAEs       []string // calling AE titles allowed; empty allows any
	SOPClasses       []string // storage SOP classes accepted [dicom.StorageSOPClasses]
	TransferSyntaxes []string // transfer syntaxes accepted [dicom.StorableTransferSyntaxes]
	MaxPDU           uint32   // largest P-DATA-TF we accept [256 KiB]
	// AllowedNetworks are the remote addresses that may connect at all; any other is
	// closed on accept, before it costs anything. Empty allows any.
	AllowedNetworks []netip.Prefix
	// MaxConnections bounds the TCP connections open at once, associated or not;
	// beyond it a connection is refused on accept [4 × MaxAssociations].
	MaxConnections int
	// MaxConnectionsPerAddress bounds the connections (and so the associations) of
	// one remote IP address [MaxAssociations / 2, at least 1].
	MaxConnectionsPerAddress int
	MaxAssociations          int // concurrent associations [8]
	// MaxOperations bounds the C-STOREs outstanding on one association whose SCU
	// proposes asynchronous operations (PS3.7 D.3.3.3) [8]; see async.go.
	MaxOperations int
	// MaxAssociationsPerAE bounds the concurrent associations of one calling AE
	// title [MaxAssociations / 2, at least 1].
	MaxAssociationsPerAE int
	// StoreIdleLimit ends an association that has stored nothing for this long: a
	// C-ECHO keeps the connection alive but does not count [5 min].
	StoreIdleLimit time.Duration
	// DisplaceIdleAfter: when every association place is taken, a new association
	// displaces the one that has stored nothing for longest, if that is at least this
	// long [30 s].
	DisplaceIdleAfter time.Duration
	// MaxLife ends an association this long after it was accepted, after the message
	// in progress (up to ShutdownGrace) [1 h].
	MaxLife       time.Duration
	ARTIM         time.Duration // wait for A-ASSOCIATE-RQ, and for close after release [30 s]
	IdleTimeout   time.Duration // longest silence inside an association [2 min]
	ShutdownGrace time.Duration // time a message in progress gets to finish on shutdown [10 s]
	TLS           *tls.Config   // DICOM TLS (PS3.15 B.1) when set
	// RefusalLogInterval is the least time between two log lines about refusals of
	// one kind [10 s].
	RefusalLogInterval time.Duration
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
	if c.MaxOperations <= 0 {
		c.MaxOperations = 8
	}
	c.MaxOperations = min(c.MaxOperations, 1<<16-1)
	if c.MaxConnections <= 0 {
		c.MaxConnections = 4 * c.MaxAssociations
	}
	if c.MaxConnectionsPerAddress <= 0 {
		c.MaxConnectionsPerAddress = max(c.MaxAssociations/2, 1)
	}
	if c.MaxAssociationsPerAE <= 0 {
		c.MaxAssociationsPerAE = max(c.MaxAssociations/2, 1)
	}
	if c.StoreIdleLimit <= 0 {
		c.StoreIdleLimit = 5 * time.Minute
	}
	if c.DisplaceIdleAfter <= 0 {
		c.DisplaceIdleAfter = 30 * time.Second
	}
	if c.MaxLife <= 0 {
		c.MaxLife = time.Hour
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
	if c.RefusalLogInterval <= 0 {
		c.RefusalLogInterval = 10 * time.Second
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

	addr     atomic.Value // string: the listening address
	active   atomic.Int64
	total    atomic.Uint64
	stats    stats
	gate     *gate
	refusals *refusalLog
	connLog  *burstLog    // warnings about single connections and associations
	refusers atomic.Int64 // goroutines answering refused connections

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
	s.gate = newGate(&s.cfg)
	s.refusals = &refusalLog{log: s.log, interval: cfg.RefusalLogInterval, limits: s.limitText}
	s.connLog = &burstLog{burst: 20, interval: cfg.RefusalLogInterval}
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
		// Admission comes first, before a goroutine or a buffer is spent on the
		// connection, so that a flood costs the box no more than its limits.
		remote := remoteAddr(nc)
		if !s.allowed(remote) {
			s.refuse(nc, remote, refusedNotAllowed)
			continue
		}
		sl, why, victim := s.gate.enter(remote, nc)
		if why != "" {
			s.refuse(nc, remote, why)
			continue
		}
		if victim != nil {
			s.countRefusal(refusedEvicted, victim.addr)
			victim.nc.Close()
		}
		s.m.connections.Inc()
		nc = withQuickAck(nc)
		if s.cfg.TLS != nil {
			nc = tls.Server(nc, s.cfg.TLS)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.m.connections.Dec()
			defer s.gate.leave(sl)
			s.serveConn(ctx, nc, sl)
		}()
	}
	ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.stop(s.cfg.ShutdownGrace, stopShutdown)
	}
	s.mu.Unlock()
	wg.Wait()
	s.refusals.close()
	return err
}

// serveConn runs one association from transport connect to close.
func (s *SCP) serveConn(ctx context.Context, nc net.Conn, sl *slot) {
	defer nc.Close()
	remote := nc.RemoteAddr().String()
	log := s.log.With("remote", remote)

	// ARTIM: the peer must open the association promptly (PS3.8 9.1.5). The deadline
	// covers the whole request, so a peer trickling it in cannot stretch it.
	nc.SetReadDeadline(time.Now().Add(s.cfg.ARTIM))
	if tc, ok := nc.(*tls.Conn); ok {
		if err := tc.HandshakeContext(ctx); err != nil {
			if s.gate.wasEvicted(sl) {
				return
			}
			s.connWarn(log, "DICOM TLS handshake failed", "err", err)
			s.fail("tls_handshake")
			return
		}
	}
	rq, ok := s.readRequest(nc, log, sl)
	if !ok || !s.gate.spoke(sl) {
		return
	}
	log = log.With("calling_ae", rq.CallingAE, "called_ae", rq.CalledAE)
	if rj := s.admit(rq); rj != nil {
		// The slot is free before the peer learns of the rejection, so that it may
		// try again at once.
		s.gate.leave(sl)
		nc.SetWriteDeadline(time.Now().Add(s.cfg.ARTIM))
		nc.Write(rj.Encode())
		s.connWarn(log, "association rejected", "reason", rjText(rj))
		s.m.associations.WithLabelValues("rejected").Inc()
		s.fail("association_rejected")
		return
	}
	as, why, victim := s.gate.associate(rq.CallingAE, sl.addr, time.Now())
	if why != "" {
		rj := &AssociateRJ{Result: rjTransient, Source: rjSourcePresentation, Reason: rjLocalLimitExceeded}
		s.gate.leave(sl)
		nc.SetWriteDeadline(time.Now().Add(s.cfg.ARTIM))
		nc.Write(rj.Encode())
		s.m.associations.WithLabelValues("rejected").Inc()
		s.countRefusal(why, sl.addr)
		s.fail("too_many_associations")
		return
	}
	if victim != nil {
		s.countRefusal(refusedDisplaced, victim.addr)
		victim.stop()
	}
	// free gives back the association's place; it runs before the A-RELEASE-RP, so
	// that a modality may open its next association as soon as it has the answer, and
	// at the latest when the connection ends. The connection's own place is held until
	// it closes: a peer that releases and never closes still counts.
	free := func() { s.gate.release(as) }
	defer free()
	s.active.Add(1)
	s.total.Add(1)
	s.m.active.Inc()
	// Only an admitted association gets the buffered reader and its P-DATA buffer.
	c := newConn(nc, s.cfg.MaxPDU, s.cfg.IdleTimeout)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	if ctx.Err() != nil {
		c.stopping, c.cause = true, stopShutdown
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
	ac.AsyncWindow = s.window(rq)
	ops := newOperations(1)
	if ac.AsyncWindow != nil {
		ops = newOperations(int(ac.AsyncWindow.Performed))
	}
	c.maxSend = rq.MaxPDU
	nc.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
	if _, err := nc.Write(ac.Encode()); err != nil {
		s.connWarn(log, "cannot send A-ASSOCIATE-AC", "err", err)
		return
	}
	s.m.associations.WithLabelValues("accepted").Inc()
	log.Info("association accepted", "contexts", len(c.contexts), "proposed", len(rq.Contexts), "peer_max_pdu", rq.MaxPDU,
		"operations_outstanding", cap(ops.slots))
	a := &scpAssoc{s: s, c: c, log: log, callingAE: rq.CallingAE, calledAE: rq.CalledAE, free: free, slot: as, ops: ops}
	s.gate.running(as, func() { c.stop(s.cfg.ShutdownGrace, stopDisplaced) })
	a.run()
}

// readRequest reads the A-ASSOCIATE-RQ that must open the association. It reads
// without a buffer, so that a connection not yet admitted holds no more than the
// request itself (at most MaxAssociateLength). ok is false when the connection is
// to be closed; what went wrong is logged and counted.
func (s *SCP) readRequest(nc net.Conn, log *slog.Logger, sl *slot) (*AssociateRQ, bool) {
	p, err := NewReader(nc, s.cfg.MaxPDU).Read()
	if err != nil && s.gate.wasEvicted(sl) {
		return nil, false // counted and logged as a refusal
	}
	if errors.Is(err, io.EOF) {
		// Connected and closed without a byte: a port check, not a DICOM peer.
		log.Debug("connection closed before any PDU")
		return nil, false
	}
	if err != nil {
		s.connWarn(log, "no valid A-ASSOCIATE-RQ; closing", "err", err)
		s.fail(reasonOf(err))
		if errors.Is(err, ErrMalformedPDU) {
			nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
			nc.Write((&Abort{Source: abortSourceProvider, Reason: abortInvalidParameter}).Encode())
		}
		return nil, false
	}
	rq, ok := p.(*AssociateRQ)
	if !ok {
		s.connWarn(log, "first PDU is not A-ASSOCIATE-RQ; aborting", "type", p.pduType())
		s.fail("protocol_error")
		nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		nc.Write((&Abort{Source: abortSourceProvider, Reason: abortUnexpectedPDU}).Encode())
		return nil, false
	}
	return rq, true
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
	storeIdle *time.Timer // ends an association that stores nothing (StoreIdleLimit)
	free      func()      // gives back its association's place in the gate (once)
	slot      *assocSlot
	ops       *operations // C-STOREs outstanding apart from the reader (async.go)
	wmu       sync.Mutex  // one response written at a time
}

// end closes the association after a release request, a peer abort or an error.
func (a *scpAssoc) end(err error) {
	var pa *PeerAbortError
	switch {
	case errors.Is(err, errReleaseRequested):
		a.free()
		a.c.nc.SetWriteDeadline(time.Now().Add(a.s.cfg.ARTIM))
		a.c.nc.Write(encodeRelease(typeReleaseRP))
		// ARTIM: give the requestor the chance to close first, as PS3.8 prefers.
		a.c.nc.SetReadDeadline(time.Now().Add(a.s.cfg.ARTIM))
		io.Copy(io.Discard, io.LimitReader(a.c.nc, 1<<16))
		a.log.Info("association released")
		a.s.m.associations.WithLabelValues("released").Inc()
	case errors.As(err, &pa):
		a.s.connWarn(a.log, "association aborted by peer", "source", pa.Source, "reason", pa.Reason)
		a.s.m.associations.WithLabelValues("aborted").Inc()
		a.s.fail("peer_abort")
	case a.c.isStopping() && errors.Is(err, os.ErrDeadlineExceeded):
		a.stopped()
	case errors.Is(err, os.ErrDeadlineExceeded):
		a.s.connWarn(a.log, "aborting association: peer silent too long", "idle_timeout", a.s.cfg.IdleTimeout)
		a.c.abort(abortSourceProvider, abortNotSpecified)
		a.s.m.associations.WithLabelValues("aborted").Inc()
		a.s.fail("timeout")
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		a.s.connWarn(a.log, "peer closed the connection without releasing the association")
		a.s.m.associations.WithLabelValues("aborted").Inc()
		a.s.fail("connection_lost")
	case errors.Is(err, ErrMalformedPDU) || errors.Is(err, ErrMalformedCommand):
		a.s.connWarn(a.log, "aborting association: protocol error", "err", err)
		a.c.abort(abortSourceProvider, abortInvalidParameter)
		a.s.m.associations.WithLabelValues("aborted").Inc()
		a.s.fail("protocol_error")
	default:
		a.s.connWarn(a.log, "association failed", "err", err)
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
		// Time spent receiving an instance is work, however slow: the store-idle
		// limit counts only the time between instances.
		a.storeIdle.Stop()
		defer a.storeIdle.Reset(a.s.cfg.StoreIdleLimit)
		a.s.gate.working(a.slot, true, time.Now())
		defer func() { a.s.gate.working(a.slot, false, time.Now()) }()
		return a.store(ctxID, pc, cmd)
	}
	a.s.connWarn(a.log, "refusing unsupported DIMSE operation", "command_field", fmt.Sprintf("0x%04x", cmd.Field))
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
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.c.nc.SetWriteDeadline(time.Now().Add(a.s.cfg.IdleTimeout))
	return a.c.writeCommand(ctxID, rsp)
}

// logUID returns a UID for the log, cut short when a peer sent an absurdly long one.
func logUID(uid string) string {
	const max = 80
	if len(uid) <= max {
		return uid
	}
	return fmt.Sprintf("%s… (%d bytes)", uid[:max], len(uid))
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
