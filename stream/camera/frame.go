// Package camera turns the box's video and audio sources (an RTSP camera, raw RTP on a
// UDP port, the clip embedded for the demo) into whole frames as the source encoded
// them, for the WHIP publisher to send without transcoding. It runs on the box.
package camera

import (
	"context"
	"time"
)

// Codec names a media encoding as SDP does (the rtpmap encoding name).
type Codec string

// Codecs a source may deliver. Only H264, Opus, PCMU and PCMA can be forwarded to a
// browser as they are; a source that delivers anything else says so in its status.
const (
	H264 Codec = "H264"
	H265 Codec = "H265"
	Opus Codec = "opus"
	PCMU Codec = "PCMU"
	PCMA Codec = "PCMA"
)

// Frame is one unit of media as the source encoded it: for H.264 one access unit
// (every NAL unit of one picture in Annex B form, with the SPS and PPS in front of
// every IDR picture), for audio one packet's payload.
type Frame struct {
	Codec Codec
	Data  []byte
	// Duration is how long the frame plays, from the source's timestamps; the
	// publisher advances the RTP clock by it.
	Duration time.Duration
	// Keyframe is true for an H.264 IDR access unit.
	Keyframe bool
	// Received is when the frame's last byte reached the box, so that the delay the
	// box adds can be measured from it.
	Received time.Time
}

// Source delivers a camera's frames. Run calls emit for each frame, in order, from
// one goroutine, until ctx ends (it then returns nil) or the source fails (it returns
// why; the caller retries after a back-off). emit must not keep Data after it returns
// unless it copies it.
type Source interface {
	Run(ctx context.Context, emit func(Frame)) error
}

// KeyframeRequester is a Source that can ask its camera for an IDR picture now, when
// a viewer or the publisher needs one to start decoding (an RTCP PLI to an RTSP
// camera). A source that cannot ask (raw RTP, the clip) waits for the next IDR the
// camera sends anyway.
type KeyframeRequester interface {
	RequestKeyframe()
}

// StatusReporter is a Source that says what it is receiving and what of it cannot be
// forwarded as it is.
type StatusReporter interface {
	Status() Status
}
