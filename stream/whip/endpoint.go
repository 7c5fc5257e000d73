package whip

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// Media types of RFC 9725: the offer and answer, and the ICE restart fragment.
const (
	contentTypeSDP     = "application/sdp"
	contentTypeSDPFrag = "application/trickle-ice-sdpfrag"
)

// maxLinkHeaders bounds how many ICE servers a WHIP endpoint may hand the box, so a
// hostile server cannot make it gather against hundreds of TURN servers.
const maxLinkHeaders = 8

// endpoint speaks WHIP's HTTP side to one WHIP endpoint: the offer POST, the ICE
// restart PATCH and the DELETE that ends the session. It holds no session state of its
// own; a session keeps its resource URL and ETag.
type endpoint struct {
	url     *url.URL
	bearer  string
	client  *http.Client
	maxBody int64
	timeout time.Duration
}

func newEndpoint(raw string, tlsConf *tls.Config, bearer string, timeout time.Duration, maxBody int64) (*endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("whip: endpoint %q: %w", raw, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("whip: endpoint %q: want an http or https URL with a host", raw)
	}
	tr := &http.Transport{
		Proxy:               nil, // the box talks to its hub directly; an environment proxy is a surprise here
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}).DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: timeout,
		// The whole exchange is bounded by each request's context (see do).
		MaxIdleConns:      2,
		IdleConnTimeout:   30 * time.Second,
		ForceAttemptHTTP2: true,
	}
	if tlsConf != nil {
		tr.TLSClientConfig = tlsConf.Clone()
	}
	return &endpoint{
		url:     u,
		bearer:  bearer,
		client:  &http.Client{Transport: tr, CheckRedirect: refuseRedirect},
		maxBody: maxBody,
		timeout: timeout,
	}, nil
}

// refuseRedirect stops the client from following a redirect: RFC 9725 allows a 307
// for load balancing, but following it would resend the offer, and with it the box's
// bearer token, to a host nobody configured.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// published is what a successful offer POST gives: the session's resource, its ETag
// and the answer, and the ICE servers the endpoint suggested.
type published struct {
	resource   *url.URL
	etag       string
	answer     string
	iceServers []webrtc.ICEServer
}

// StatusError is a WHIP endpoint's answer with an unexpected HTTP status.
type StatusError struct {
	Method   string
	URL      string
	Code     int
	Response string // the start of the body, for the operator
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("whip: %s %s: HTTP %d", e.Method, e.URL, e.Code)
	if e.Response != "" {
		msg += ": " + e.Response
	}
	return msg
}

// sessionGone reports whether a status means the endpoint no longer knows the session
// or cannot restart it, so that only a new session helps (RFC 9725 §4.3: 405 and 501
// mean no ICE restart support; 404 an unknown resource; 412 a stale ETag, that is, a
// session changed by someone else; 400/422 an unusable fragment).
func sessionGone(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case http.StatusNotFound, http.StatusGone, http.StatusMethodNotAllowed, http.StatusNotImplemented,
		http.StatusPreconditionFailed, http.StatusBadRequest, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// publish POSTs the offer and returns the created session.
func (e *endpoint) publish(ctx context.Context, offer string) (*published, error) {
	resp, body, err := e.do(ctx, e.timeout, http.MethodPost, e.url, contentTypeSDP, offer, nil)
	if err != nil {
		return nil, err
	}
	where := "POST " + e.url.String()
	if resp.StatusCode != http.StatusCreated {
		return nil, &StatusError{Method: http.MethodPost, URL: e.url.String(), Code: resp.StatusCode, Response: excerpt(body)}
	}
	if err := checkContentType(resp, contentTypeSDP); err != nil {
		return nil, fmt.Errorf("whip: %s: %w", where, err)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("whip: %s: 201 without a Location header", where)
	}
	resource, err := e.url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("whip: %s: Location %q: %w", where, loc, err)
	}
	if resource.Scheme != e.url.Scheme || resource.Host != e.url.Host {
		// The session resource carries the box's credentials on PATCH and DELETE; keep
		// them on the origin the operator configured.
		return nil, fmt.Errorf("whip: %s: Location %q is on another origin", where, loc)
	}
	servers, err := parseICEServerLinks(resp.Header.Values("Link"))
	if err != nil {
		return nil, fmt.Errorf("whip: %s: %w", where, err)
	}
	return &published{resource: resource, etag: resp.Header.Get("ETag"), answer: string(body), iceServers: servers}, nil
}

// restartICE PATCHes the session with the box's new ICE credentials and candidates
// and returns the endpoint's fragment and the session's new ETag. Its timeout is the
// caller's: a restart is retried soon, and one request hanging on a dead link must
// not hold the picture back when the link returns.
func (e *endpoint) restartICE(ctx context.Context, timeout time.Duration, resource *url.URL, etag, frag string) (answerFrag, newETag string, err error) {
	hdr := http.Header{}
	if etag != "" {
		hdr.Set("If-Match", etag)
	} else {
		hdr.Set("If-Match", "*") // RFC 9725 §4.3.2: an ICE restart always carries If-Match
	}
	resp, body, err := e.do(ctx, timeout, http.MethodPatch, resource, contentTypeSDPFrag, frag, hdr)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", &StatusError{Method: http.MethodPatch, URL: resource.String(), Code: resp.StatusCode, Response: excerpt(body)}
	}
	if err := checkContentType(resp, contentTypeSDPFrag); err != nil {
		return "", "", fmt.Errorf("whip: PATCH %s: %w", resource, err)
	}
	return string(body), resp.Header.Get("ETag"), nil
}

// end DELETEs the session. A 404 means the endpoint already forgot it, which is what
// the box wanted.
func (e *endpoint) end(ctx context.Context, resource *url.URL) error {
	resp, body, err := e.do(ctx, e.timeout, http.MethodDelete, resource, "", "", nil)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound {
		return &StatusError{Method: http.MethodDelete, URL: resource.String(), Code: resp.StatusCode, Response: excerpt(body)}
	}
	return nil
}

// forgetConnections drops idle connections before an ICE restart: after the box's
// address changed, a kept-alive TCP connection is dead and a request on it would only
// wait for its timeout.
func (e *endpoint) forgetConnections() { e.client.CloseIdleConnections() }

// do sends one request bounded by the endpoint's timeout and reads at most maxBody
// bytes of the answer; a longer answer is an error, not a truncated SDP.
func (e *endpoint) do(parent context.Context, timeout time.Duration, method string, u *url.URL, contentType, body string, hdr http.Header) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, nil, fmt.Errorf("whip: %s %s: %w", method, u, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if e.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+e.bearer)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		if parent.Err() == nil && ctx.Err() != nil {
			return nil, nil, fmt.Errorf("whip: %s %s: no answer within %s: %w", method, u, timeout, err)
		}
		return nil, nil, fmt.Errorf("whip: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, e.maxBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("whip: %s %s: reading the answer: %w", method, u, err)
	}
	if int64(len(data)) > e.maxBody {
		return nil, nil, fmt.Errorf("whip: %s %s: answer longer than %d bytes", method, u, e.maxBody)
	}
	return resp, data, nil
}

func checkContentType(resp *http.Response, want string) error {
	got := resp.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(got)
	if err != nil || mt != want {
		return fmt.Errorf("content type %q, want %s", got, want)
	}
	return nil
}

// excerpt keeps the first line of an error body, short and printable, for logs.
func excerpt(body []byte) string {
	const max = 200
	line, _, _ := bytes.Cut(body, []byte("\n"))
	if len(line) > max {
		line = line[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(string(line)))
}
