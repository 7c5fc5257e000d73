package rtsp

import (
	"bufio"
	"strings"
	"testing"
)

const describeAnswer = "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Base: rtsp://10.0.0.9/stream/\r\nContent-Length: 10\r\n\r\nv=0\r\nabcde"

func TestReadResponse(t *testing.T) {
	r := bufio.NewReader(strings.NewReader(describeAnswer + "RTSP/1.0 401 Unauthorized\nCSeq: 3\nWWW-Authenticate: Basic realm=\"x\"\nWWW-Authenticate: Digest realm=\"x\", nonce=\"n\"\n\n"))
	resp, err := ReadResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Reason != "OK" || resp.Header.Get("cseq") != "2" || string(resp.Body) != "v=0\r\nabcde" ||
		resp.Header.Get("Content-Base") != "rtsp://10.0.0.9/stream/" {
		t.Errorf("got %+v", resp)
	}
	resp, err = ReadResponse(r) // bare LF line ends, as some cameras send
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 401 || len(resp.Header.Values("WWW-Authenticate")) != 2 {
		t.Errorf("got %+v", resp)
	}
}

func TestReadResponseBounds(t *testing.T) {
	many := "RTSP/1.0 200 OK\r\n" + strings.Repeat("X-A: b\r\n", MaxHeaders+1) + "\r\n"
	cases := map[string]string{
		"long line":      "RTSP/1.0 200 " + strings.Repeat("O", MaxLineSize) + "\r\n\r\n",
		"many headers":   many,
		"huge body":      "RTSP/1.0 200 OK\r\nContent-Length: 70000\r\n\r\n",
		"negative body":  "RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
		"short body":     "RTSP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"HTTP":           "HTTP/1.1 200 OK\r\n\r\n",
		"RTSP/2.0":       "RTSP/2.0 200 OK\r\n\r\n",
		"bad code":       "RTSP/1.0 2x0 OK\r\n\r\n",
		"header no name": "RTSP/1.0 200 OK\r\n: x\r\n\r\n",
		"cut short":      "RTSP/1.0 200 OK\r\nCSeq: 1",
	}
	for name, in := range cases {
		// A buffer as the client's, so that a long line is refused by size.
		r := bufio.NewReaderSize(strings.NewReader(in), MaxLineSize)
		if resp, err := ReadResponse(r); err == nil {
			t.Errorf("%s: parsed %+v, want an error", name, resp)
		}
	}
}

func TestRequestMarshal(t *testing.T) {
	r := Request{Method: "DESCRIBE", URL: "rtsp://cam/stream", Header: Header{}}
	r.Header.Add("CSeq", "2")
	r.Header.Add("Accept", "application/sdp")
	want := "DESCRIBE rtsp://cam/stream RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\n\r\n"
	if got := string(r.Marshal()); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
