package appliance

import (
	"lifeline/stream/talkback"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// StreamSection is the box's live stream ([stream] in edge.toml): where it publishes
// video, audio and vitals over WHIP.
type StreamSection struct {
	// Enabled publishes the live stream once the box is enrolled (or at once when
	// WHIPURL and BearerToken are set). Default true: the crew has nothing to switch on.
	Enabled bool `toml:"enabled"`
	// WHIPURL is any standard WHIP endpoint the hospital runs; empty publishes to the
	// enrolled hub, authenticated by the box's own certificate.
	WHIPURL string `toml:"whip_url"`
	// BearerToken is sent to WHIPURL as "Authorization: Bearer …"; only with whip_url.
	BearerToken string `toml:"bearer_token"`
	// Interfaces limits the stream's ICE candidates to these network interfaces (the
	// 5G modem's), so that media never leaves by the clinic's LAN by accident.
	Interfaces []string `toml:"interfaces"`
	// TalkbackSink is where a doctor's push-to-talk plays in the ambulance: a command
	// that plays 16-bit little-endian 8 kHz mono PCM from its standard input, or
	// rtp://host:port for the intercom (G.711 µ-law RTP as received). Empty: the box
	// does not offer to receive the hospital's voice.
	TalkbackSink string `toml:"talkback_sink"`
}

// CameraConfig is one [[camera]] of the box.
type CameraConfig struct {
	// URL is the camera's main stream: rtsp://user:pass@host/path, rtp://addr:port
	// for raw RTP/H.264 as ffmpeg sends it, or clip: for the embedded test clip.
	URL string `toml:"url"`
	// SubURL is the camera's lower-rate second stream, used while the link carries
	// too little for the main one.
	SubURL string `toml:"sub_url"`
}

// HubStreamSection is the hub's media transport ([stream] in hub.toml).
type HubStreamSection struct {
	// Listen is the one UDP port (and the ICE-TCP port of the same number) that
	// every live session's media uses. Default: server.listen's host, two ports up
	// (8445 beside 8443 and the viewer's 8444).
	Listen string `toml:"listen"`
	// Addresses are announced in the hub's ICE candidates when they differ from
	// Listen's host: the address boxes and browsers reach, behind NAT or when
	// listening on 0.0.0.0.
	Addresses []string `toml:"addresses"`
	// TCP accepts ICE over TCP on Listen's port too, for hospital networks that
	// block UDP. Default true.
	TCP bool `toml:"tcp"`
}

func defaultStream() StreamSection { return StreamSection{Enabled: true} }

func defaultHubStream() HubStreamSection {
	return HubStreamSection{TCP: true}
}

// StreamListen is where the hub's media transport listens: stream.listen, or by
// default server.listen's host two ports up.
func (cfg HubConfig) StreamListen() string {
	if cfg.Stream.Listen != "" {
		return cfg.Stream.Listen
	}
	host, port, err := net.SplitHostPort(cfg.Server.Listen)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n == 0 {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, strconv.Itoa(n+2))
}

// stream checks [stream] and every [[camera]] of the box.
func (c *checker) stream(s StreamSection, cams []CameraConfig) {
	if s.TalkbackSink != "" {
		if _, err := talkback.Open(s.TalkbackSink, nil); err != nil {
			c.fail("stream.talkback_sink", "%v", err)
		}
	}
	if s.WHIPURL != "" {
		u, err := url.Parse(s.WHIPURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			c.fail("stream.whip_url", "%q is not an http(s) URL of a WHIP endpoint", s.WHIPURL)
		} else if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
			c.fail("stream.whip_url", "%q: patient video leaves the box only over https", s.WHIPURL)
		}
	}
	if s.BearerToken != "" && s.WHIPURL == "" {
		c.fail("stream.bearer_token", "only for stream.whip_url; the enrolled hub knows the box by its certificate")
	}
	for _, cam := range cams {
		c.cameraURL("camera.url", cam.URL, true)
		c.cameraURL("camera.sub_url", cam.SubURL, false)
	}
	if len(cams) > 1 {
		c.fail("camera", "%d cameras configured: this version forwards one camera per box", len(cams))
	}
}

// cameraURL checks the scheme of a camera's stream; the source itself reports what
// the camera sends once it runs.
func (c *checker) cameraURL(key, raw string, required bool) {
	if raw == "" {
		if required {
			c.fail(key, "a camera needs its stream's URL (rtsp://…, rtp://addr:port or clip:)")
		}
		return
	}
	scheme, _, _ := strings.Cut(raw, ":")
	switch scheme {
	case "rtsp", "rtp", "clip":
	default:
		c.fail(key, "%q: the box reads rtsp://, rtp:// or clip: streams", raw)
	}
}

// hubStream checks the hub's [stream].
func (c *checker) hubStream(s HubStreamSection) {
	if s.Listen != "" {
		c.hostPort("stream.listen", s.Listen)
	}
	for _, a := range s.Addresses {
		if net.ParseIP(a) == nil {
			c.fail("stream.addresses", "%q is not an IP address; ICE candidates carry addresses, not names", a)
		}
	}
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
