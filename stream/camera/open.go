package camera

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"lifeline/stream/rtsp"
)

// Options tune the sources Open makes; the zero value means the defaults.
type Options struct {
	// RTSP tunes RTSP connections (timeouts, user agent).
	RTSP rtsp.Config
	// RTPTimeout is how long an rtp:// source waits for a packet before it fails;
	// default 10 s.
	RTPTimeout time.Duration
}

// Open returns the source for a camera URL from the configuration:
//
//	rtsp://[user:pass@]host[:port]/path   an RTSP camera
//	rtp://ADDRESS:PORT[?sdp=/path.sdp]    raw RTP/H.264 received on a UDP port; the
//	                                      sender's SDP file, if given, supplies the
//	                                      SPS and PPS it does not send in band
//	clip:                                 the test clip embedded in the binary
//	clip:/path/file.h264[?fps=25]         an H.264 (Annex B) file played in a loop
func Open(rawURL string, o Options) (Source, error) {
	if rawURL == "" {
		return nil, errors.New("camera: empty URL")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a password
		}
		return nil, fmt.Errorf("camera: URL %q: %w", redact(rawURL), err)
	}
	switch u.Scheme {
	case "rtsp":
		if u.Hostname() == "" {
			return nil, fmt.Errorf("camera: URL %q has no host", u.Redacted())
		}
		if p := u.Port(); p != "" {
			if _, err := strconv.ParseUint(p, 10, 16); err != nil {
				return nil, fmt.Errorf("camera: URL %q: port %q is not a number 0-65535", u.Redacted(), p)
			}
		}
		return NewRTSPSource(rawURL, o.RTSP), nil
	case "rtp":
		return openRTP(u, o)
	case "clip":
		return openClip(u)
	case "":
		return nil, fmt.Errorf("camera: URL %q has no scheme (rtsp://, rtp:// or clip: is needed)", redact(rawURL))
	}
	return nil, fmt.Errorf("camera: URL %q: scheme %q is not one of rtsp, rtp, clip", u.Redacted(), u.Scheme)
}

// rtpListenAddr checks an rtp:// URL: an IP address (0.0.0.0 for every interface)
// and a port, nothing else.
func rtpListenAddr(u *url.URL) (string, error) {
	if u.User != nil || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("camera: URL %q: rtp:// takes only an address and a port, as rtp://0.0.0.0:5004", u.Redacted())
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		return "", fmt.Errorf("camera: URL %q has no port; as rtp://0.0.0.0:5004", u.Redacted())
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("camera: URL %q: port %q is not a number 1-65535", u.Redacted(), port)
	}
	if net.ParseIP(host) == nil {
		return "", fmt.Errorf("camera: URL %q: %q is not an IP address to listen on (0.0.0.0 listens on all)", u.Redacted(), host)
	}
	return net.JoinHostPort(host, port), nil
}

// OpenCamera returns a Camera of a main URL and an optional sub URL (empty for none).
func OpenCamera(mainURL, subURL string, o Options) (*Camera, error) {
	main, err := Open(mainURL, o)
	if err != nil {
		return nil, err
	}
	var sub Source
	if subURL != "" {
		if sub, err = Open(subURL, o); err != nil {
			return nil, fmt.Errorf("sub_url: %w", err)
		}
	}
	return NewCamera(main, sub), nil
}

// openClip opens the embedded clip ("clip:") or a clip file ("clip:/path?fps=N",
// 30 fps unless said).
func openClip(u *url.URL) (Source, error) {
	if u.Opaque == "" && u.Path == "" && u.Host == "" {
		return NewClipSource(), nil
	}
	if u.Opaque != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
		return nil, fmt.Errorf("camera: URL %q: a clip is \"clip:\" (the embedded one) or \"clip:/absolute/path.h264\"", u.String())
	}
	fps := ClipRate
	if v := u.Query().Get("fps"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("camera: URL %q: fps %q is not a number", u.String(), v)
		}
		fps = n
	}
	return NewClipFileSource(u.Path, fps)
}

// maxSDPFile bounds an SDP file read for an rtp:// source.
const maxSDPFile = 64 << 10

// openRTP opens an rtp:// source, with the SPS and PPS of the sender's SDP file when
// the URL names one (?sdp=/path): `ffmpeg -c copy -f rtp` from an MP4 sends them only
// in its SDP (-sdp_file), never in band, and no picture decodes without them.
func openRTP(u *url.URL, o Options) (Source, error) {
	addr, err := rtpListenAddr(u)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	for k := range q {
		if k != "sdp" {
			return nil, fmt.Errorf("camera: URL %q: unknown parameter %q (rtp:// takes sdp=/path/to/file.sdp)", u.Redacted(), k)
		}
	}
	src := NewRTPSource(addr, o.RTPTimeout)
	path := q.Get("sdp")
	if path == "" {
		return src, nil
	}
	body, err := readBounded(path, maxSDPFile)
	if err != nil {
		return nil, fmt.Errorf("camera: URL %q: SDP file: %w", u.Redacted(), err)
	}
	desc, err := rtsp.ParseDescription(body, "")
	if err != nil {
		return nil, fmt.Errorf("camera: URL %q: SDP file %s: %w", u.Redacted(), path, err)
	}
	v := desc.Video()
	switch {
	case v == nil:
		return nil, fmt.Errorf("camera: URL %q: SDP file %s has no video", u.Redacted(), path)
	case !strings.EqualFold(v.Codec, "H264"):
		return nil, fmt.Errorf("camera: URL %q: SDP file %s says %s: %w", u.Redacted(), path, v.Codec, ErrNotForwardable)
	case v.SPS == nil || v.PPS == nil:
		return nil, fmt.Errorf("camera: URL %q: SDP file %s has no sprop-parameter-sets", u.Redacted(), path)
	}
	src.SetParameterSets(v.SPS, v.PPS)
	return src, nil
}

// readBounded reads the file at path, failing when it is over limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return data, nil
}
