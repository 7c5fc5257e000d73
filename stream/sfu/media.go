package sfu

import (
	"fmt"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"strings"
)

// videoFeedback is the RTCP feedback the hub asks for on video: NACK (answered from
// the packet cache), PLI and FIR (forwarded to the box, rate-limited).
var videoFeedback = []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}

// h264Profiles are the H.264 formats the hub accepts, most preferred first: the
// profiles browsers decode come first, so that a box offering several gets one every
// viewer can watch. High profile is accepted last, for cameras that send nothing
// else; Chromium does not offer to receive it (see PEERS.md), so viewers may refuse it.
var h264Profiles = []struct{ profileLevelID, mode string }{
	{"42e01f", "1"}, {"42001f", "1"}, {"4d001f", "1"}, {"f4001f", "1"}, {"64001f", "1"},
	{"42e01f", "0"}, {"42001f", "0"}, {"4d001f", "0"},
}

// supportedCodecs lists every codec the hub forwards, with the payload type it
// prefers for it. Order is preference.
func supportedCodecs() []webrtc.RTPCodecParameters {
	var out []webrtc.RTPCodecParameters
	pt := webrtc.PayloadType(102)
	for _, p := range h264Profiles {
		out = append(out, webrtc.RTPCodecParameters{PayloadType: pt, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: videoFeedback,
			SDPFmtpLine: fmt.Sprintf("level-asymmetry-allowed=1;packetization-mode=%s;profile-level-id=%s", p.mode, p.profileLevelID),
		}})
		pt++
	}
	return append(out,
		webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}},
		webrtc.RTPCodecParameters{PayloadType: 0, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}},
		webrtc.RTPCodecParameters{PayloadType: 8, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}},
	)
}

func isH264(mime string) bool { return strings.EqualFold(mime, webrtc.MimeTypeH264) }

func kindOf(c webrtc.RTPCodecParameters) webrtc.RTPCodecType {
	if strings.HasPrefix(strings.ToLower(c.MimeType), "video/") {
		return webrtc.RTPCodecTypeVideo
	}
	return webrtc.RTPCodecTypeAudio
}

// newMediaEngine registers the supported codecs. RTX is left out on purpose: a box
// then retransmits on its media SSRC, which the packet cache understands.
func newMediaEngine() (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	for _, c := range supportedCodecs() {
		if err := m.RegisterCodec(c, kindOf(c)); err != nil {
			return nil, fmt.Errorf("register %s: %w", c.MimeType, err)
		}
	}
	return m, nil
}

// newAPIs builds the two pion APIs on one setting engine: boxes get NACK
// generation, receiver reports and TWCC feedback (the box runs GCC on it); viewers
// get sender reports only, because their NACKs, PLIs and FIRs are handled by the SFU
// from the shared packet cache rather than by a per-viewer interceptor buffer.
func newAPIs(se webrtc.SettingEngine) (publisher, viewer *webrtc.API, err error) {
	pm, err := newMediaEngine()
	if err != nil {
		return nil, nil, err
	}
	pi := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(pm, pi); err != nil {
		return nil, nil, fmt.Errorf("publisher interceptors: %w", err)
	}
	publisher = webrtc.NewAPI(webrtc.WithMediaEngine(pm), webrtc.WithInterceptorRegistry(pi), webrtc.WithSettingEngine(se))

	vm, err := newMediaEngine()
	if err != nil {
		return nil, nil, err
	}
	vi := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(vi); err != nil {
		return nil, nil, fmt.Errorf("viewer interceptors: %w", err)
	}
	viewer = webrtc.NewAPI(webrtc.WithMediaEngine(vm), webrtc.WithInterceptorRegistry(vi), webrtc.WithSettingEngine(se))
	return publisher, viewer, nil
}
