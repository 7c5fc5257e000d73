package transfer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"lifeline/dicom/spool"
)

// client speaks the upload protocol to the hub: over HTTP/3 on a pool of QUIC
// connections (see connPool), or, where UDP to the hub is blocked and TCP is not,
// over HTTPS on TCP (tcpPath). It asks route for the hub's address for each request,
// and tells it when the hub there cannot be reached, so that the box moves to the
// next of its hubs at once.
type client struct {
	route HubRoute
	pool  *connPool
	tcp   *tcpPath
	http  *http.Client
	enc   *zstd.Encoder
	limit *limiter
	log   *slog.Logger
	// up is signalled when requests that failed may go again at once: a connection
	// was made after a failure, the transport changed, or the route moved.
	up chan struct{}
	// quicRetry is how often the box tries QUIC again while it uses TCP.
	quicRetry time.Duration

	// overTCP: requests go over HTTPS on TCP, QUIC having failed where TCP worked.
	overTCP atomic.Bool
	// fallback is the evidence for the move to TCP, guarded by its own lock since
	// dials report from their own goroutines.
	fallback struct {
		sync.Mutex
		probing bool
		tcpOK   time.Time // last TCP handshake that worked while QUIC did not; zero: none
		strikes int       // QUIC dials begun after tcpOK that failed
	}
	// plainCreate holds the hubs (by address) that ignore a first chunk sent with the
	// creation request, as hubs before creation with upload do.
	plainCreate sync.Map

	stop chan struct{}
	wg   sync.WaitGroup
	// corrupt, when set by a test, may flip bits in a chunk after its Content-Digest
	// was computed, as a faulty link or memory would.
	corrupt func(sop string, offset int64, body []byte)
}

// HubRoute is the box's choice among its hub's addresses: several hub processes on
// one shared state, any of which serves the box. The forwarder asks Current before
// each request, and calls Unreachable with the address it got when the hub there
// answers neither over QUIC nor over TCP, so that the route moves on at once instead
// of waiting for its own periodic check.
type HubRoute interface {
	Current() string
	Unreachable(hubURL string)
}

// oneHub is the route of a box with a single hub address.
type oneHub string

func (h oneHub) Current() string    { return string(h) }
func (h oneHub) Unreachable(string) {}

// hubBase checks a hub URL and returns it as https://host:port.
func hubBase(hubURL string) (string, error) {
	u, err := url.Parse(hubURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("transfer: hub URL %q must be https://host[:port]", hubURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	return "https://" + host, nil
}

// newClient is a client of the single hub at hubURL.
func newClient(hubURL string, tlsConf *tls.Config, idle time.Duration, conns int, limit *limiter) (*client, error) {
	return newRoutedClient(clientConfig{route: oneHub(hubURL), tls: tlsConf, idle: idle, conns: conns, limit: limit})
}

type clientConfig struct {
	route     HubRoute
	tls       *tls.Config
	idle      time.Duration
	conns     int
	limit     *limiter
	log       *slog.Logger
	quicRetry time.Duration // zero: a minute
}

func newRoutedClient(cfg clientConfig) (*client, error) {
	if _, err := hubBase(cfg.route.Current()); err != nil {
		return nil, err
	}
	if cfg.tls == nil {
		return nil, errors.New("transfer: forwarder needs the box's TLS configuration")
	}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	if cfg.quicRetry <= 0 {
		cfg.quicRetry = time.Minute
	}
	tlsConf := cfg.tls.Clone()
	if tlsConf.ClientSessionCache == nil {
		// Session tickets let a reconnect resume TLS instead of a full handshake.
		tlsConf.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	}
	tlsConf.ClientSessionCache = privateSessions{tlsConf.ClientSessionCache}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	c := &client{route: cfg.route, enc: enc, limit: cfg.limit, log: cfg.log, up: make(chan struct{}, 1),
		quicRetry: cfg.quicRetry, stop: make(chan struct{})}
	dialTO := min(cfg.idle, 3*time.Second)
	// A fresh socket per connection (quic.DialAddr): after an outage or an address
	// change the old one may be bound to an interface that is gone. The box waits for
	// the (resumed) handshake instead of sending 0-RTT: quic-go v0.65.0 races when a
	// stream is opened on an early connection while the handshake completes (seen by
	// the race detector in TestResumeAcrossHubAndBoxRestarts), and one round trip per
	// reconnect is a small price for a transport without races.
	c.pool = newConnPool(tlsConf, &quic.Config{
		MaxIdleTimeout:       cfg.idle,
		KeepAlivePeriod:      cfg.idle / 3,
		HandshakeIdleTimeout: dialTO,
	}, cfg.conns, dialTO, c.up, c.dialed)
	c.tcp = newTCPPath(cfg.tls, cfg.idle, dialTO)
	c.http = &http.Client{Transport: c}
	c.wg.Go(c.retryQUIC)
	return c, nil
}

// privateSessions hands each connection its own copy of a cached session: quic-go
// records on the session whether 0-RTT is allowed, and two connections dialled at
// once after an outage would otherwise write the same cached object concurrently.
type privateSessions struct{ tls.ClientSessionCache }

func (p privateSessions) Get(key string) (*tls.ClientSessionState, bool) {
	cs, ok := p.ClientSessionCache.Get(key)
	if !ok || cs == nil {
		return cs, ok
	}
	ticket, st, err := cs.ResumptionState()
	if err != nil || st == nil {
		return cs, ok
	}
	own := *st
	mine, err := tls.NewResumptionState(ticket, &own)
	if err != nil {
		return nil, false
	}
	return mine, true
}

func (c *client) close() {
	close(c.stop)
	c.wg.Wait()
	c.pool.close()
	c.tcp.close()
	c.enc.Close()
}

// hubError is an answer from the hub that is not success.
type hubError struct {
	status  int
	problem *Problem
	offset  int64 // Upload-Offset of the answer, -1 if absent
}

func (e *hubError) Error() string {
	if e.problem != nil {
		return fmt.Sprintf("hub answered %d: %s", e.status, e.problem.Error())
	}
	return fmt.Sprintf("hub answered %d", e.status)
}

func (e *hubError) is(problemType string) bool {
	return e.problem != nil && e.problem.Type == problemType
}

// permanent reports whether retrying the same request cannot help: the hub refused
// the instance itself.
func (e *hubError) permanent() bool {
	return e.is(ProblemInvalidDICOM) || e.is(ProblemConflict) || e.is(ProblemBadRequest)
}

func asHubError(err error) (*hubError, bool) {
	var he *hubError
	ok := errors.As(err, &he)
	return he, ok
}

func (c *client) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the hub's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		he := &hubError{status: resp.StatusCode, offset: -1}
		if p, err := ParseProblem(body); err == nil {
			he.problem = p
		}
		if off, err := ParseOffset(resp.Header.Get(hdrUploadOffset)); err == nil {
			he.offset = off
		}
		return resp, body, he
	}
	return resp, body, nil
}

// uploadState is where the hub says an upload stands.
type uploadState struct {
	url      string
	offset   int64
	complete bool
}

func readState(resp *http.Response) (uploadState, error) {
	off, err := ParseOffset(resp.Header.Get(hdrUploadOffset))
	if err != nil {
		return uploadState{}, fmt.Errorf("hub's Upload-Offset: %w", err)
	}
	complete, _ := ParseBool(resp.Header.Get(hdrUploadComplete))
	return uploadState{offset: off, complete: complete}, nil
}

// hub returns the address (https://host:port) the next request goes to.
func (c *client) hub() (string, error) {
	return hubBase(c.route.Current())
}

// base is hub's address without its error, for tests and logs; "" when the route's
// address is not a hub URL.
func (c *client) base() string {
	b, _ := c.hub()
	return b
}

// uploadPath is an upload's path on whichever hub serves the box. Records written
// before the box followed a route hold the whole URL.
func uploadPath(stored string) string {
	if u, err := url.Parse(stored); err == nil && u.Path != "" {
		return u.Path
	}
	return stored
}

// create opens the instance's upload on the hub (or finds the one it already has)
// and returns where it stands, its url being the upload's path.
func (c *client) create(ctx context.Context, inst spool.Instance) (uploadState, error) {
	st, _, err := c.createWith(ctx, inst, nil, false, false)
	return st, err
}

// createWith is create whose request carries first, the file's first bytes, as an
// append at offset 0 would (creation with upload), last saying that they end the
// file. It returns their size as sent: zero when the hub is one that takes no bytes
// with a creation, and then they were not sent.
func (c *client) createWith(ctx context.Context, inst spool.Instance, first []byte, last, compress bool) (uploadState, int, error) {
	sum, err := hex.DecodeString(inst.SHA256)
	if err != nil || len(sum) != 32 {
		return uploadState{}, 0, fmt.Errorf("spool record of %s has a bad sha256 %q", inst.SOPInstanceUID, inst.SHA256)
	}
	base, err := c.hub()
	if err != nil {
		return uploadState{}, 0, err
	}
	if _, plain := c.plainCreate.Load(base); plain {
		first = nil
	}
	var body io.Reader
	var sent []byte
	var encoding, digest string
	if len(first) > 0 {
		sent, encoding, digest = c.encode(inst.SOPInstanceUID, 0, first, compress)
		body = c.limit.reader(ctx, sent)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+UploadsPath, body)
	if err != nil {
		return uploadState{}, 0, err
	}
	req.Header.Set(hdrInterop, interopVersion)
	req.Header.Set(hdrUploadComplete, formatBool(len(first) > 0 && last))
	req.Header.Set(hdrUploadLength, fmt.Sprint(inst.Size))
	req.Header.Set(hdrReprDigest, FormatDigest(sum))
	req.Header.Set(hdrSOPInstance, inst.SOPInstanceUID)
	req.Header.Set(hdrStudy, inst.StudyUID)
	if inst.SOPClassUID != "" {
		req.Header.Set(hdrSOPClass, inst.SOPClassUID)
	}
	if inst.TransferSyntax != "" {
		req.Header.Set(hdrTransferSyntax, inst.TransferSyntax)
	}
	if body != nil {
		req.ContentLength = int64(len(sent))
		req.Header.Set("Content-Type", partialUploadType)
		req.Header.Set(hdrContentDigest, digest)
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
	}
	resp, _, err := c.do(req)
	if err != nil {
		return uploadState{}, len(sent), err
	}
	st, err := readState(resp)
	if err != nil {
		return st, len(sent), err
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, UploadsPath+"/") {
		return st, len(sent), fmt.Errorf("hub created an upload without a usable Location (%q)", loc)
	}
	st.url = loc
	if body != nil && st.offset == 0 && !st.complete {
		// Only a hub that predates creation with upload answers a chunk at offset 0
		// with offset 0: its creations go without one from now on.
		c.plainCreate.Store(base, true)
		c.log.Info("transfer: the hub takes no bytes with an upload's creation; sending them in an append", "hub", base)
	}
	return st, len(sent), nil
}

// offset asks the hub how much of the upload at path it holds. It is marked as safe
// for 0-RTT (HEAD changes nothing on the hub, so a replay is harmless), for when the
// box sends early data again; see the dial in newRoutedClient.
func (c *client) offset(ctx context.Context, path string) (uploadState, error) {
	base, err := c.hub()
	if err != nil {
		return uploadState{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http3.MethodHead0RTT, base+path, nil)
	if err != nil {
		return uploadState{}, err
	}
	req.Header.Set(hdrInterop, interopVersion)
	resp, _, err := c.do(req)
	if err != nil {
		return uploadState{}, err
	}
	st, err := readState(resp)
	st.url = path
	return st, err
}

// encode makes a chunk's body: zstd when asked and when it pays (offsets always
// count uncompressed bytes), with the Content-Digest of what is sent.
func (c *client) encode(sop string, offset int64, data []byte, compress bool) (body []byte, encoding, digest string) {
	body = data
	if compress && len(data) > 0 {
		z := c.enc.EncodeAll(data, make([]byte, 0, len(data)/2))
		if len(z) < len(data)*9/10 {
			body, encoding = z, "zstd"
		}
	}
	digest = ContentDigest(body)
	if c.corrupt != nil && len(body) > 0 {
		body = bytes.Clone(body)
		c.corrupt(sop, offset, body)
	}
	return body, encoding, digest
}

// appendChunk sends data at offset to the upload at path; last marks the final chunk.
func (c *client) appendChunk(ctx context.Context, sop, path string, offset int64, data []byte, last, compress bool) (uploadState, int, error) {
	base, err := c.hub()
	if err != nil {
		return uploadState{}, 0, err
	}
	body, encoding, digest := c.encode(sop, offset, data, compress)
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, base+path, c.limit.reader(ctx, body))
	if err != nil {
		return uploadState{}, 0, err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set(hdrInterop, interopVersion)
	req.Header.Set("Content-Type", partialUploadType)
	req.Header.Set(hdrUploadOffset, fmt.Sprint(offset))
	req.Header.Set(hdrUploadComplete, formatBool(last))
	req.Header.Set(hdrContentDigest, digest)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, _, err := c.do(req)
	if err != nil {
		return uploadState{}, len(body), err
	}
	st, err := readState(resp)
	st.url = path
	return st, len(body), err
}

// putManifest sends a study's manifest and returns what the hub holds of it.
func (c *client) putManifest(ctx context.Context, m Manifest) (StudyReceipt, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return StudyReceipt{}, err
	}
	base, err := c.hub()
	if err != nil {
		return StudyReceipt{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+StudiesPath+"/"+m.StudyUID+"/manifest", bytes.NewReader(data))
	if err != nil {
		return StudyReceipt{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	_, body, err := c.do(req)
	if err != nil {
		return StudyReceipt{}, err
	}
	var rc StudyReceipt
	if err := json.Unmarshal(body, &rc); err != nil {
		return rc, fmt.Errorf("hub's study receipt: %w", err)
	}
	return rc, nil
}
