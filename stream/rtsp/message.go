// Package rtsp is a small RTSP/1.0 client (RFC 2326) for IP cameras: OPTIONS,
// DESCRIBE with Basic or Digest authentication, SETUP with RTP interleaved on the
// RTSP connection, PLAY, keep-alive and TEARDOWN. Everything a camera sends is
// bounded in size and time, since a camera on the ambulance's network is not trusted
// with the box's memory. It runs on the box.
package rtsp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
)

// Bounds on what a server can make the client read.
const (
	// MaxLineSize bounds a status or header line.
	MaxLineSize = 4096
	// MaxHeaders bounds the header lines of one response.
	MaxHeaders = 64
	// MaxBodySize bounds a response body (an SDP is a few hundred bytes to a few KiB).
	MaxBodySize = 64 << 10
)

// Header holds the header fields of an RTSP message by canonical name ("Cseq",
// "Www-Authenticate"), as net/textproto spells them.
type Header map[string][]string

// Get returns the first value of the field name, or "".
func (h Header) Get(name string) string {
	if v := h[textproto.CanonicalMIMEHeaderKey(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of the field name.
func (h Header) Values(name string) []string { return h[textproto.CanonicalMIMEHeaderKey(name)] }

// Add appends a value to the field name.
func (h Header) Add(name, value string) {
	k := textproto.CanonicalMIMEHeaderKey(name)
	h[k] = append(h[k], value)
}

// Response is an RTSP response.
type Response struct {
	StatusCode int
	Reason     string
	Header     Header
	Body       []byte
}

// errNotResponse says that a message started with something other than "RTSP/".
var errNotResponse = errors.New("rtsp: not a response")

// ReadResponse reads one response from r: the status line, the header and as many
// body bytes as Content-Length says, each within the bounds above.
func ReadResponse(r *bufio.Reader) (*Response, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, fmt.Errorf("rtsp: status line: %w", err)
	}
	resp, err := parseStatusLine(line)
	if err != nil {
		return nil, err
	}
	if resp.Header, err = readHeader(r); err != nil {
		return nil, err
	}
	if resp.Body, err = readBody(r, resp.Header); err != nil {
		return nil, err
	}
	return resp, nil
}

func parseStatusLine(line string) (*Response, error) {
	proto, rest, _ := strings.Cut(line, " ")
	if !strings.HasPrefix(proto, "RTSP/") {
		return nil, fmt.Errorf("%w: status line %q", errNotResponse, truncate(line))
	}
	if proto != "RTSP/1.0" {
		return nil, fmt.Errorf("rtsp: unsupported protocol version %q", truncate(proto))
	}
	codeText, reason, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil || code < 100 || code > 999 || len(codeText) != 3 {
		return nil, fmt.Errorf("rtsp: bad status code %q", truncate(codeText))
	}
	return &Response{StatusCode: code, Reason: reason}, nil
}

// readHeader reads header lines up to the empty line that ends them.
func readHeader(r *bufio.Reader) (Header, error) {
	h := Header{}
	for n := 0; ; n++ {
		line, err := readLine(r)
		if err != nil {
			return nil, fmt.Errorf("rtsp: header: %w", err)
		}
		if line == "" {
			return h, nil
		}
		if n == MaxHeaders {
			return nil, fmt.Errorf("rtsp: more than %d header lines", MaxHeaders)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("rtsp: bad header line %q", truncate(line))
		}
		h.Add(name, strings.TrimSpace(value))
	}
}

func readBody(r *bufio.Reader, h Header) ([]byte, error) {
	cl := h.Get("Content-Length")
	if cl == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(cl)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("rtsp: bad Content-Length %q", truncate(cl))
	}
	if n > MaxBodySize {
		return nil, fmt.Errorf("rtsp: body of %d bytes, over the %d allowed", n, MaxBodySize)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("rtsp: body of %d bytes: %w", n, err)
	}
	return body, nil
}

// readLine reads one line ending in CRLF or LF, without the ending. The reader's
// buffer and MaxLineSize bound it.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > MaxLineSize {
		return "", fmt.Errorf("line longer than %d bytes", MaxLineSize)
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return string(bytes.TrimRight(line, "\r\n")), nil
}

// truncate shortens what a server sent for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// Request is an RTSP request as the client writes it.
type Request struct {
	Method string
	URL    string
	Header Header
}

// Marshal returns the request in wire form; the header fields are written in a
// stable order (sorted by name) so that captures can be compared.
func (r *Request) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s RTSP/1.0\r\n", r.Method, r.URL)
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range r.Header[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", wireName(k), v)
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// wireName spells a canonical header name as RFC 2326 does, for cameras that compare
// names case-sensitively.
func wireName(canonical string) string {
	switch canonical {
	case "Cseq":
		return "CSeq"
	case "Www-Authenticate":
		return "WWW-Authenticate"
	case "Rtp-Info":
		return "RTP-Info"
	}
	return canonical
}
