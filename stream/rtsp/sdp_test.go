package rtsp

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// ffmpegSDP is what `ffmpeg -c copy -f rtp -sdp_file` wrote for the High-profile
// fixture of stream/h264/testdata, with an audio section and controls added as an
// RTSP server would.
const ffmpegSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat LIBAVFORMAT_VERSION\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADazZQUGfnwEQAAADABAAAAMDwPFCmWA=,aOrssiw=; profile-level-id=64000D\r\na=control:streamid=0\r\n" +
	"m=audio 0 RTP/AVP 8\r\na=control:streamid=1\r\n"

func TestParseDescription(t *testing.T) {
	d, err := ParseDescription([]byte(ffmpegSDP), "rtsp://10.0.0.9:554/live")
	if err != nil {
		t.Fatal(err)
	}
	if d.Control != "rtsp://10.0.0.9:554/live" {
		t.Errorf("aggregate control %q", d.Control)
	}
	v := d.Video()
	if v == nil || v.Codec != "H264" || v.PayloadType != 96 || v.ClockRate != 90000 || v.Control != "rtsp://10.0.0.9:554/live/streamid=0" ||
		v.Fmtp["profile-level-id"] != "64000D" || v.Fmtp["packetization-mode"] != "1" {
		t.Fatalf("video %+v", v)
	}
	wantSPS, _ := hex.DecodeString("6764000dacd941419f9f0110000003001000000303c0f1429960")
	if !bytes.Equal(v.SPS, wantSPS) || !bytes.Equal(v.PPS, []byte{0x68, 0xea, 0xec, 0xb2, 0x2c}) {
		t.Errorf("parameter sets %x %x", v.SPS, v.PPS)
	}
	a := d.Audio()
	if a == nil || a.Codec != "PCMA" || a.ClockRate != 8000 || a.Control != "rtsp://10.0.0.9:554/live/streamid=1" {
		t.Errorf("audio %+v", a)
	}
}

func TestParseDescriptionH265AndAbsoluteControl(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=Session\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 98\r\na=rtpmap:98 H265/90000\r\na=control:rtsp://cam/ch1/trackID=1\r\n" +
		"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\na=control:trackID=2\r\n"
	d, err := ParseDescription([]byte(sdp), "rtsp://cam/ch1/")
	if err != nil {
		t.Fatal(err)
	}
	if v := d.Video(); v == nil || v.Codec != "H265" || v.Control != "rtsp://cam/ch1/trackID=1" {
		t.Errorf("video %+v", v)
	}
	if a := d.Audio(); a != nil {
		t.Errorf("AAC audio offered as forwardable: %+v", a)
	}
}

func TestParseDescriptionRejects(t *testing.T) {
	for name, sdp := range map[string]string{
		"empty":    "",
		"no media": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n",
		"garbage":  "\x00\x01 not sdp",
	} {
		if d, err := ParseDescription([]byte(sdp), "rtsp://cam/"); err == nil {
			t.Errorf("%s: parsed %+v", name, d)
		}
	}
}

// TestControlURLs resolves controls as cameras expect them, among them a base with a
// query (Dahua's realmonitor URLs) that must be kept.
func TestControlURLs(t *testing.T) {
	for _, c := range []struct{ base, control, want string }{
		{"rtsp://cam/live", "trackID=1", "rtsp://cam/live/trackID=1"},
		{"rtsp://cam/live/", "trackID=1", "rtsp://cam/live/trackID=1"},
		{"rtsp://cam:554/cam/realmonitor?channel=1&subtype=0/", "trackID=0", "rtsp://cam:554/cam/realmonitor?channel=1&subtype=0/trackID=0"},
		{"rtsp://cam/Streaming/Channels/101/", "rtsp://cam/Streaming/Channels/101/trackID=1", "rtsp://cam/Streaming/Channels/101/trackID=1"},
		{"rtsp://cam/live", "*", "rtsp://cam/live"},
	} {
		if got := resolveControl(c.base, c.control); got != c.want {
			t.Errorf("%s + %s = %s, want %s", c.base, c.control, got, c.want)
		}
	}
}
