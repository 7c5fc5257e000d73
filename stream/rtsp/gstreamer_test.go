package rtsp

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/pion/rtp"
)

// These are the bytes GStreamer's RTSP server (gst-rtsp-server 1.22, Debian 12) sent
// to a client, serving a libx264 High-profile MP4 behind Digest authentication;
// testdata/gstreamer/README.md says how they were captured.

func readCaptured(t *testing.T, name string) *bufio.Reader {
	t.Helper()
	data, err := os.ReadFile("testdata/gstreamer/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return bufio.NewReaderSize(bytes.NewReader(data), MaxLineSize)
}

func TestGStreamerAnswers(t *testing.T) {
	resp, err := ReadResponse(readCaptured(t, "options.bin"))
	if err != nil || !strings.Contains(resp.Header.Get("Public"), "GET_PARAMETER") {
		t.Fatalf("OPTIONS: %+v, %v", resp, err)
	}
	resp, err = ReadResponse(readCaptured(t, "describe_401.bin"))
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("DESCRIBE 401: %+v, %v", resp, err)
	}
	ch, err := pickChallenge(resp.Header.Values("WWW-Authenticate"))
	if err != nil || ch.Scheme != "Digest" || ch.Params["realm"] != "GStreamer RTSP Server" || ch.Params["nonce"] == "" {
		t.Fatalf("challenge %+v, %v", ch, err)
	}
	resp, err = ReadResponse(readCaptured(t, "describe_200.bin"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDescription(resp.Body, resp.Header.Get("Content-Base"))
	if err != nil {
		t.Fatal(err)
	}
	v := d.Video()
	if v == nil || v.Control != "rtsp://127.0.0.1:8557/cam/stream=0" || d.Control != "rtsp://127.0.0.1:8557/cam/" ||
		v.Fmtp["profile-level-id"] != "64001e" || len(v.SPS) == 0 || len(v.PPS) == 0 || d.Audio() != nil {
		t.Errorf("description %+v, video %+v", d, v)
	}
	resp, err = ReadResponse(readCaptured(t, "setup_200.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rtpCh, rtcpCh, err := parseInterleaved(resp.Header.Get("Transport"))
	if err != nil || rtpCh != 0 || rtcpCh != 1 || resp.Header.Get("Session") != "ycD0PrYTbtvhMwi+" {
		t.Errorf("SETUP: channels %d-%d, %v, session %q", rtpCh, rtcpCh, err, resp.Header.Get("Session"))
	}
}

// TestGStreamerPlay reads the PLAY answer and the first 12,000 bytes of media after
// it, as ReadPacket does, and expects RTP on channel 0 with the SDP's payload type.
func TestGStreamerPlay(t *testing.T) {
	c := &Conn{br: readCaptured(t, "play_200_and_media.bin")}
	_, _, resp, err := c.readMessage()
	if err != nil || resp == nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Rtp-Info"), "url=rtsp://127.0.0.1:8557/cam/stream=0") {
		t.Fatalf("PLAY answer %+v, %v", resp, err)
	}
	var packets, markers int
	for {
		ch, frame, resp, err := c.readMessage()
		if err != nil {
			break // the capture ends inside a frame
		}
		if resp != nil || ch != 0 {
			continue
		}
		var p rtp.Packet
		if err := p.Unmarshal(frame); err != nil || p.PayloadType != 96 {
			t.Fatalf("packet %d: %v, payload type %d", packets, err, p.PayloadType)
		}
		packets++
		if p.Marker {
			markers++
		}
	}
	if packets < 5 || markers == 0 {
		t.Errorf("%d RTP packets, %d pictures ended", packets, markers)
	}
}
