package rtsp

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// do sends a request and waits for its answer, skipping interleaved frames that
// arrive meanwhile. A 401 is answered once with the credentials of the URL.
func (c *Conn) do(method, url string, h Header) (*Response, error) {
	for attempt := 0; ; attempt++ {
		cseq, err := c.write(method, url, h)
		if err != nil {
			return nil, err
		}
		resp, err := c.awaitResponse(method, url, cseq)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == 401 && c.cred != nil && attempt == 0:
			ch, err := pickChallenge(resp.Header.Values("WWW-Authenticate"))
			if err != nil {
				return nil, fmt.Errorf("rtsp: %s %s: %w", method, url, err)
			}
			c.cred.challenge, c.cred.nc = ch, 0
			continue
		case resp.StatusCode == 401:
			return nil, fmt.Errorf("%w (%s %s: %d %s)", ErrUnauthorized, method, url, resp.StatusCode, truncate(resp.Reason))
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			return nil, &StatusError{Method: method, URL: url, StatusCode: resp.StatusCode, Reason: resp.Reason}
		}
		return resp, nil
	}
}

func (c *Conn) awaitResponse(method, url string, cseq int) (*Response, error) {
	c.setReadDeadline(time.Now().Add(c.cfg.ResponseTimeout))
	want := strconv.Itoa(cseq)
	for {
		_, _, resp, err := c.readMessage()
		if err != nil {
			return nil, fmt.Errorf("rtsp: %s %s: %w", method, url, c.readError(err))
		}
		if resp != nil && resp.Header.Get("CSeq") == want {
			return resp, nil
		}
	}
}

// write sends a request with the fields every request carries and returns its CSeq.
func (c *Conn) write(method, url string, h Header) (int, error) {
	c.cseq++
	req := Request{Method: method, URL: url, Header: Header{}}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Add("CSeq", strconv.Itoa(c.cseq))
	req.Header.Add("User-Agent", c.cfg.UserAgent)
	if c.session != "" {
		req.Header.Add("Session", c.session)
	}
	if c.cred != nil && c.cred.challenge.Scheme != "" {
		req.Header.Add("Authorization", c.cred.authorization(method, url))
	}
	if err := c.writeBytes(req.Marshal()); err != nil {
		return 0, fmt.Errorf("rtsp: %s %s: %w", method, url, err)
	}
	return c.cseq, nil
}

func (c *Conn) writeBytes(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if !c.interrupted {
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.cfg.ResponseTimeout))
	}
	c.mu.Unlock()
	_, err := c.conn.Write(b)
	return err
}

// maxEmptyLines bounds the blank lines tolerated between messages (some cameras end
// a body with an extra CRLF).
const maxEmptyLines = 8

// readMessage reads the next thing on the connection: an interleaved frame (channel
// and payload, valid until the next read) or a response. A request from the server
// (some cameras send ANNOUNCE or SET_PARAMETER) is read and ignored.
func (c *Conn) readMessage() (ch byte, frame []byte, resp *Response, err error) {
	for {
		first, err := c.br.Peek(1)
		if err != nil {
			return 0, nil, nil, err
		}
		if first[0] == '$' {
			return c.readFrame()
		}
		line, err := readLine(c.br)
		if err != nil {
			return 0, nil, nil, err
		}
		switch {
		case line == "":
			c.emptyLines++
			if c.emptyLines > maxEmptyLines {
				return 0, nil, nil, fmt.Errorf("more than %d blank lines between messages", maxEmptyLines)
			}
			continue
		case strings.HasPrefix(line, "RTSP/"):
			c.emptyLines = 0
			resp, err := parseStatusLine(line)
			if err == nil {
				resp.Header, err = readHeader(c.br)
			}
			if err == nil {
				resp.Body, err = readBody(c.br, resp.Header)
			}
			return 0, nil, resp, err
		case strings.HasSuffix(line, " RTSP/1.0"):
			c.emptyLines = 0
			h, err := readHeader(c.br)
			if err == nil {
				_, err = readBody(c.br, h)
			}
			if err != nil {
				return 0, nil, nil, err
			}
			continue
		}
		return 0, nil, nil, fmt.Errorf("camera sent %q where a response or an interleaved frame belongs", truncate(line))
	}
}

// readFrame reads one interleaved frame: '$', the channel, a 16-bit length and the
// data (RFC 2326 §10.12). The 16-bit length bounds it to 64 KiB.
func (c *Conn) readFrame() (byte, []byte, *Response, error) {
	var head [4]byte
	if _, err := io.ReadFull(c.br, head[:]); err != nil {
		return 0, nil, nil, err
	}
	n := int(binary.BigEndian.Uint16(head[2:]))
	if _, err := io.ReadFull(c.br, c.frame[:n]); err != nil {
		return 0, nil, nil, err
	}
	c.emptyLines = 0
	return head[1], c.frame[:n], nil, nil
}
