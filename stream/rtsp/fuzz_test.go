package rtsp

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzReadResponse reads responses one after another as the client does and checks
// that whatever parses stays within the bounds.
func FuzzReadResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), MaxLineSize)
		for range 4 {
			resp, err := ReadResponse(r)
			if err != nil {
				return
			}
			if resp.StatusCode < 100 || resp.StatusCode > 999 || len(resp.Body) > MaxBodySize || len(resp.Header) > MaxHeaders {
				t.Fatalf("out of bounds: %d, %d body bytes, %d headers", resp.StatusCode, len(resp.Body), len(resp.Header))
			}
			for _, v := range resp.Header.Values("WWW-Authenticate") {
				_, _ = ParseChallenge(v)
			}
			if resp.Header.Get("Content-Type") == "application/sdp" {
				_, _ = ParseDescription(resp.Body, "rtsp://cam/")
			}
		}
	})
}

// FuzzReadMessage reads what a camera sends on a playing connection (interleaved
// frames, responses, requests from the server, garbage) as ReadPacket does, and checks
// that frames stay within their 64 KiB and responses within their bounds.
func FuzzReadMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Conn{br: bufio.NewReaderSize(bytes.NewReader(data), MaxLineSize)}
		for range 64 {
			_, frame, resp, err := c.readMessage()
			if err != nil {
				return
			}
			if len(frame) > 0xffff || (resp != nil && len(resp.Body) > MaxBodySize) {
				t.Fatalf("frame of %d bytes or body beyond bounds", len(frame))
			}
		}
	})
}
