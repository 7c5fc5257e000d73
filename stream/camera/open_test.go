package camera

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpen(t *testing.T) {
	good := map[string]string{
		"rtsp://admin:pw@192.168.1.64:554/Streaming/Channels/101": "*camera.RTSPSource",
		"rtsp://cam/stream":     "*camera.RTSPSource",
		"rtp://0.0.0.0:5004":    "*camera.RTPSource",
		"rtp://127.0.0.1:5004/": "*camera.RTPSource",
		"clip:":                 "*camera.ClipSource",
	}
	for url, want := range good {
		src, err := Open(url, Options{})
		if err != nil {
			t.Errorf("%s: %v", url, err)
			continue
		}
		if got := typeName(src); got != want {
			t.Errorf("%s: %s, want %s", url, got, want)
		}
	}
	bad := map[string]string{
		"":                                    "empty",
		"camera1":                             "no scheme",
		"http://cam/stream":                   "not one of rtsp, rtp, clip",
		"rtsp:///stream":                      "no host",
		"rtsp://cam:99999/x":                  "port",
		"rtp://0.0.0.0":                       "no port",
		"rtp://camera.local:5004":             "not an IP address",
		"rtp://0.0.0.0:5004/path":             "only an address and a port",
		"rtp://0.0.0.0:0":                     "port",
		"clip:nothing":                        "clip:",
		"clip:/no/such/file.h264":             "no such file",
		"clip:/etc/hostname?fps=x":            "fps",
		"rtsp://user:secret@:1/%zz":           "URL",
		"rtp://0.0.0.0:5004?x=1":              "unknown parameter",
		"rtp://0.0.0.0:5004?sdp=/no/such.sdp": "no such file",
		"rtp://0.0.0.0:5004?sdp=" + writeFile(t, "h265.sdp", "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 5004 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n"):    "cannot be forwarded",
		"rtp://0.0.0.0:5004?sdp=" + writeFile(t, "nosprop.sdp", "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"): "no sprop-parameter-sets",
	}
	for url, words := range bad {
		_, err := Open(url, Options{})
		if err == nil || !strings.Contains(err.Error(), words) {
			t.Errorf("%q: %v, want an error with %q", url, err, words)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error shows the password: %v", url, err)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *RTSPSource:
		return "*camera.RTSPSource"
	case *RTPSource:
		return "*camera.RTPSource"
	case *ClipSource:
		return "*camera.ClipSource"
	}
	return "?"
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
