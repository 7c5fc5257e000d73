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
	"net/http"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"lifeline/dicom/spool"
)

// client speaks the upload protocol to one hub over HTTP/3.
type client struct {
	base      string
	transport *http3.Transport
	http      *http.Client
	enc       *zstd.Encoder
	limit     *limiter
	// corrupt, when set by a test, may flip bits in a chunk after its Content-Digest
	// was computed, as a faulty link or memory would.
	corrupt func(sop string, offset int64, body []byte)
}

func newClient(hubURL string, tlsConf *tls.Config, idle time.Duration, limit *limiter) (*client, error) {
	if !strings.HasPrefix(hubURL, "https://") {
		return nil, fmt.Errorf("transfer: hub URL %q must start with https://", hubURL)
	}
	if tlsConf == nil {
		return nil, errors.New("transfer: forwarder needs the box's TLS configuration")
	}
	tlsConf = tlsConf.Clone()
	if tlsConf.ClientSessionCache == nil {
		// Session tickets let a reconnect resume TLS instead of a full handshake.
		tlsConf.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	}
	tlsConf.ClientSessionCache = privateSessions{tlsConf.ClientSessionCache}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	tr := &http3.Transport{
		TLSClientConfig: tlsConf,
		QUICConfig: &quic.Config{
			MaxIdleTimeout:       idle,
			KeepAlivePeriod:      idle / 3,
			HandshakeIdleTimeout: idle,
		},
		Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			// A fresh socket per connection: after an outage or an address change the old
			// one may be bound to an interface that is gone. The box waits for the
			// (resumed) handshake instead of sending 0-RTT: quic-go v0.65.0 races when a
			// stream is opened on an early connection while the handshake completes
			// (seen by the race detector in TestResumeAcrossHubAndBoxRestarts), and one
			// round trip per reconnect is a small price for a transport without races.
			return quic.DialAddr(ctx, addr, tlsCfg, cfg)
		},
	}
	return &client{base: strings.TrimRight(hubURL, "/"), transport: tr, http: &http.Client{Transport: tr},
		enc: enc, limit: limit}, nil
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
	c.transport.Close()
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

// create opens the instance's upload on the hub (or finds the one it already has).
func (c *client) create(ctx context.Context, inst spool.Instance) (uploadState, error) {
	sum, err := hex.DecodeString(inst.SHA256)
	if err != nil || len(sum) != 32 {
		return uploadState{}, fmt.Errorf("spool record of %s has a bad sha256 %q", inst.SOPInstanceUID, inst.SHA256)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+UploadsPath, nil)
	if err != nil {
		return uploadState{}, err
	}
	req.Header.Set(hdrInterop, interopVersion)
	req.Header.Set(hdrUploadComplete, "?0")
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
	resp, _, err := c.do(req)
	if err != nil {
		return uploadState{}, err
	}
	st, err := readState(resp)
	if err != nil {
		return st, err
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, UploadsPath+"/") {
		return st, fmt.Errorf("hub created an upload without a usable Location (%q)", loc)
	}
	st.url = c.base + loc
	return st, nil
}

// offset asks the hub how much of the upload it holds. It is marked as safe for 0-RTT
// (HEAD changes nothing on the hub, so a replay is harmless), for when the box sends
// early data again; see the dial in newClient.
func (c *client) offset(ctx context.Context, url string) (uploadState, error) {
	req, err := http.NewRequestWithContext(ctx, http3.MethodHead0RTT, url, nil)
	if err != nil {
		return uploadState{}, err
	}
	req.Header.Set(hdrInterop, interopVersion)
	resp, _, err := c.do(req)
	if err != nil {
		return uploadState{}, err
	}
	st, err := readState(resp)
	st.url = url
	return st, err
}

// appendChunk sends data at offset; last marks the final chunk. zstd compresses the
// body when asked and when it pays; offsets always count uncompressed bytes.
func (c *client) appendChunk(ctx context.Context, sop, url string, offset int64, data []byte, last, compress bool) (uploadState, int, error) {
	body, encoding := data, ""
	if compress && len(data) > 0 {
		z := c.enc.EncodeAll(data, make([]byte, 0, len(data)/2))
		if len(z) < len(data)*9/10 {
			body, encoding = z, "zstd"
		}
	}
	digest := ContentDigest(body)
	if c.corrupt != nil && len(body) > 0 {
		body = bytes.Clone(body)
		c.corrupt(sop, offset, body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, url, c.limit.reader(ctx, body))
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
	st.url = url
	return st, len(body), err
}

// putManifest sends a study's manifest and returns what the hub holds of it.
func (c *client) putManifest(ctx context.Context, m Manifest) (StudyReceipt, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return StudyReceipt{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+StudiesPath+"/"+m.StudyUID+"/manifest", bytes.NewReader(data))
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
