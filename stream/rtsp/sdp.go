package rtsp

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Track is one media stream a camera offers, from its DESCRIBE answer.
type Track struct {
	// Media is the SDP media type: "video" or "audio".
	Media string
	// Codec is the rtpmap encoding name as the camera wrote it ("H264", "H265",
	// "PCMU", "opus"), or the static one of the payload type.
	Codec       string
	PayloadType uint8
	ClockRate   uint32
	Channels    int
	// Control is the absolute URL to SETUP this track with.
	Control string
	// Fmtp holds the format parameters by lower-case name.
	Fmtp map[string]string
	// SPS and PPS are the H.264 parameter sets of sprop-parameter-sets, if given.
	SPS, PPS []byte
}

// Description is what the client makes of a DESCRIBE answer: the SDP session and its
// tracks in the order the camera listed them.
type Description struct {
	// BaseURL resolves relative control URLs: Content-Base, Content-Location or
	// the request URL, in that order (RFC 2326 §C.1.1).
	BaseURL string
	// Control is the aggregate control URL for PLAY and TEARDOWN: the session-level
	// control attribute, or BaseURL.
	Control string
	Tracks  []Track
}

// staticPayloadTypes are the RTP/AVP payload types of RFC 3551 a camera may use
// without an rtpmap.
var staticPayloadTypes = map[uint8]struct {
	codec    string
	rate     uint32
	channels int
}{0: {"PCMU", 8000, 1}, 8: {"PCMA", 8000, 1}}

// maxTracks bounds the media sections taken from one SDP.
const maxTracks = 16

// ParseDescription reads an SDP (RFC 4566) as cameras answer DESCRIBE, with base for
// relative control URLs.
func ParseDescription(body []byte, base string) (Description, error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(string(body)); err != nil {
		return Description{}, fmt.Errorf("rtsp: SDP: %w", err)
	}
	sessionControl := base
	if c, ok := s.Attribute("control"); ok && c != "*" {
		sessionControl = resolveControl(base, c)
	}
	d := Description{BaseURL: base, Control: sessionControl}
	for i, m := range s.MediaDescriptions {
		if i == maxTracks {
			break
		}
		for _, f := range m.MediaName.Formats {
			pt, err := strconv.ParseUint(f, 10, 7)
			if err != nil {
				continue
			}
			t := parseTrack(m, uint8(pt))
			t.Control = sessionControl
			if c, ok := m.Attribute("control"); ok {
				t.Control = resolveControl(sessionControl, c)
			}
			d.Tracks = append(d.Tracks, t)
			break // a camera's media section carries one format; take the first
		}
	}
	if len(d.Tracks) == 0 {
		return Description{}, fmt.Errorf("rtsp: SDP has no media with an RTP payload type")
	}
	return d, nil
}

func parseTrack(m *sdp.MediaDescription, pt uint8) Track {
	t := Track{Media: m.MediaName.Media, PayloadType: pt, Channels: 1, Fmtp: map[string]string{}}
	if st, ok := staticPayloadTypes[pt]; ok {
		t.Codec, t.ClockRate, t.Channels = st.codec, st.rate, st.channels
	}
	prefix := strconv.Itoa(int(pt)) + " "
	for _, a := range m.Attributes {
		switch {
		case a.Key == "rtpmap" && strings.HasPrefix(a.Value, prefix):
			parseRtpmap(&t, strings.TrimPrefix(a.Value, prefix))
		case a.Key == "fmtp" && strings.HasPrefix(a.Value, prefix):
			for p := range strings.SplitSeq(strings.TrimPrefix(a.Value, prefix), ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if k != "" {
					t.Fmtp[strings.ToLower(k)] = strings.TrimSpace(v)
				}
			}
		}
	}
	if strings.EqualFold(t.Codec, "H264") {
		t.SPS, t.PPS = spropParameterSets(t.Fmtp["sprop-parameter-sets"])
	}
	return t
}

// parseRtpmap reads "NAME/RATE[/CHANNELS]".
func parseRtpmap(t *Track, v string) {
	parts := strings.Split(strings.TrimSpace(v), "/")
	t.Codec = parts[0]
	if len(parts) > 1 {
		if r, err := strconv.ParseUint(parts[1], 10, 32); err == nil {
			t.ClockRate = uint32(r)
		}
	}
	if len(parts) > 2 {
		if c, err := strconv.Atoi(parts[2]); err == nil && c > 0 && c <= 8 {
			t.Channels = c
		}
	}
}

// spropParameterSets decodes the base64 SPS and PPS of sprop-parameter-sets (RFC 6184
// §8.1); it returns nil for what is missing or does not decode.
func spropParameterSets(v string) (sps, pps []byte) {
	for p := range strings.SplitSeq(v, ",") {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(p))
		if err != nil || len(b) == 0 {
			continue
		}
		switch b[0] & 0x1f {
		case 7:
			if sps == nil {
				sps = b
			}
		case 8:
			if pps == nil {
				pps = b
			}
		}
	}
	return sps, pps
}

// resolveControl turns a control attribute into an absolute URL against base. A
// relative control is appended to the base as text, after a "/" unless the base ends
// with one (RFC 2326 §C.1.1 as cameras read it): a base with a query, such as
// rtsp://cam/cam/realmonitor?channel=1&subtype=0/ with trackID=0, must keep its query,
// which resolving it as a URL reference would drop.
func resolveControl(base, control string) string {
	switch {
	case control == "*" || control == "":
		return base
	case strings.Contains(control, "://"):
		return control
	case strings.HasSuffix(base, "/"):
		return base + control
	}
	return base + "/" + control
}

// Video returns the first H.264 video track, or else the first video track of any
// codec (so the caller can say what it is), or nil.
func (d Description) Video() *Track {
	var first *Track
	for i := range d.Tracks {
		t := &d.Tracks[i]
		if t.Media != "video" {
			continue
		}
		if strings.EqualFold(t.Codec, "H264") {
			return t
		}
		if first == nil {
			first = t
		}
	}
	return first
}

// Audio returns the first audio track a browser can play as it is (Opus, PCMU,
// PCMA), or nil.
func (d Description) Audio() *Track {
	for i := range d.Tracks {
		t := &d.Tracks[i]
		if t.Media == "audio" && (strings.EqualFold(t.Codec, "opus") || strings.EqualFold(t.Codec, "PCMU") || strings.EqualFold(t.Codec, "PCMA")) {
			return t
		}
	}
	return nil
}
