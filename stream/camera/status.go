package camera

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"lifeline/stream/h264"
)

// Status is what the box knows of a source, for the crew's status page: what it
// sends, whether a browser can show it as it is, and if not, why, in plain words.
type Status struct {
	// URL is the source's address with any password removed.
	URL string `json:"url"`
	// Stream is "main" or "sub" for a Camera; empty for a single source.
	Stream string `json:"stream,omitempty"`
	// Connected is true while frames arrive.
	Connected bool  `json:"connected"`
	Codec     Codec `json:"codec,omitempty"`
	// Profile names the H.264 profile and level ("Constrained Baseline 3.1").
	Profile        string `json:"profile,omitempty"`
	ProfileLevelID string `json:"profile_level_id,omitempty"`
	Width          int    `json:"width,omitempty"`
	Height         int    `json:"height,omitempty"`
	BFrames        bool   `json:"b_frames"`
	// Audio is the camera's audio codec when it can be forwarded, else empty.
	Audio Codec `json:"audio,omitempty"`
	// Forwardable is false when the viewers' browsers cannot show the video as it is.
	Forwardable bool `json:"forwardable"`
	// Problems says what cannot be forwarded as it is and what to change on the
	// camera, one sentence each.
	Problems []string `json:"problems,omitempty"`
	// WaitingForKeyframe is true while pictures are dropped until the next IDR (at the
	// start and after a loss).
	WaitingForKeyframe bool      `json:"waiting_for_keyframe"`
	Frames             uint64    `json:"frames"`
	Keyframes          uint64    `json:"keyframes"`
	Dropped            uint64    `json:"dropped"`
	LostPackets        uint64    `json:"lost_packets"`
	LastFrame          time.Time `json:"last_frame,omitzero"`
	LastError          string    `json:"last_error,omitempty"`
}

// browserProfiles are the H.264 profile_idc values Debian's Chromium advertises for
// receiving (42 Baseline, 4d Main, f4 High 4:4:4 Predictive; see shared/PEERS.md).
var browserProfiles = map[uint8]bool{66: true, 77: true, 244: true}

// profileHigh is High profile (64), the default of most IP cameras. Chromium does not
// advertise it, but decodes it when the box offers the stream as Constrained Baseline,
// as the publisher does (TestWhatChromiumDecodes).
const profileHigh = 100

// Sentences for the status page. They say what happens and what to do about it.
const (
	problemH265    = "The camera sends H.265 (HEVC): browsers cannot show it and the box does not transcode. Set the camera's stream to H.264."
	problemHigh    = "The camera sends H.264 High profile, which browsers do not negotiate: the box offers it as Constrained Baseline and Chromium decodes it, but other browsers were not checked and may show nothing. Set the camera's stream to Main or Baseline profile to be safe."
	problemProfile = "The camera sends H.264 %s profile, which browsers do not decode: the picture stays black. Set the camera's stream to Main or Baseline profile, or use its sub stream."
	problemB       = "The camera sends B-frames: Chromium then decodes only the keyframes, so the picture freezes between them. Turn B-frames off in the camera's encoder settings (often called 'GOP structure', 'Smart codec' or 'H.264+')."
	problemNoPS    = "No SPS/PPS received, neither in the stream nor in the SDP: no picture can be decoded. Enable 'send parameter sets in band' on the camera, or use RTSP."
	problemCodec   = "The camera sends %s video: browsers cannot show it as it is and the box does not transcode. Set the camera's stream to H.264."
	problemAudio   = "The camera's audio is %s, which browsers cannot play as it is: the stream goes without camera audio. Set the camera's audio to G.711 (PCMU/PCMA) or Opus."
)

// statusBox holds a source's Status for concurrent readers.
type statusBox struct {
	mu sync.Mutex
	s  Status
}

func newStatusBox(rawURL string) *statusBox {
	return &statusBox{s: Status{URL: redact(rawURL), Forwardable: true}}
}

func (b *statusBox) get() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.s
	s.Problems = slices.Clone(s.Problems)
	return s
}

func (b *statusBox) update(f func(s *Status)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.s)
}

// addProblem adds a sentence once.
func (s *Status) addProblem(p string, forwardable bool) {
	if !slices.Contains(s.Problems, p) {
		s.Problems = append(s.Problems, p)
	}
	if !forwardable {
		s.Forwardable = false
	}
}

// noteSPS records the profile and size of an SPS and what a browser makes of them.
func (s *Status) noteSPS(sps h264.SPS) {
	s.Codec = H264
	s.Profile = sps.Profile() + " " + sps.Level()
	s.ProfileLevelID = sps.ProfileLevelID()
	s.Width, s.Height = sps.Width, sps.Height
	switch {
	case browserProfiles[sps.ProfileIDC]:
	case sps.ProfileIDC == profileHigh:
		s.addProblem(problemHigh, true)
	default:
		s.addProblem(fmt.Sprintf(problemProfile, sps.Profile()), false)
	}
}

// noteCodec records a video codec other than H.264.
func (s *Status) noteCodec(name string) {
	switch {
	case name == "H265" || name == "HEVC":
		s.Codec = H265
		s.addProblem(problemH265, false)
	default:
		s.Codec = Codec(name)
		s.addProblem(fmt.Sprintf(problemCodec, name), false)
	}
}

// redact removes the password from a URL for display.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err == nil {
		if u.User == nil {
			return raw
		}
		return u.Redacted()
	}
	// Not a URL Go can parse: still hide whatever sits between "//" and "@".
	scheme, rest, ok := strings.Cut(raw, "://")
	if at := strings.LastIndex(rest, "@"); ok && at >= 0 {
		return scheme + "://xxxxx@" + rest[at+1:]
	}
	return raw
}
