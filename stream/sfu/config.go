package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config is what the hub gives the SFU. The zero value of every field but the two
// authorisation functions means its default (see populate).
type Config struct {
	// Listen is the one UDP address every session's media uses (ICE UDP mux).
	// Default 127.0.0.1:8445.
	Listen string
	// TCPListen is where ICE over TCP is accepted, for networks that block UDP.
	// Default: the same address as Listen. "off" disables ICE-TCP.
	TCPListen string
	// Addresses are the IP addresses announced in the hub's host candidates, when
	// they differ from the listening address (a public address behind 1:1 NAT, or
	// the hub's LAN address when listening on 0.0.0.0). Default: Listen's host.
	Addresses []string

	// WHIPPath is where boxes POST their offers; sessions live under WHIPPath/{id}.
	// Default "/whip".
	WHIPPath string
	// WHEPPath is where viewers POST offers for one box, WHEPPath/{device}; their
	// sessions live under WHEPPath/{device}/{id}. Default "/whep".
	WHEPPath string

	// MaxSessions bounds the live box sessions. Default 64.
	MaxSessions int
	// MaxViewers bounds the viewers of one box. Default 16.
	MaxViewers int
	// MaxBody bounds an SDP offer or fragment. Default 64 KiB.
	MaxBody int64
	// PacketCache is how many packets are kept per box video track for
	// retransmission and for starting a late viewer's decoder: it must hold a whole
	// GOP (a 4 s GOP at 4 Mbit/s is about 1700 packets). Default 4096, at most
	// 32768; audio tracks keep at most 512.
	PacketCache int
	// ViewerQueue is how many live packets may wait for one viewer before its
	// packets are dropped and counted (a keyframe burst waits apart). Default 512.
	ViewerQueue int
	// ViewerDataBuffer is how many bytes may wait on one viewer's data channel before
	// its messages are dropped and counted. Default 1 MiB.
	ViewerDataBuffer uint64
	// BurstRate bounds, in bits per second, how fast the packets since the last
	// keyframe are sent to a viewer who joins mid-GOP. Default 20 Mbit/s: a 4 s GOP
	// at 4 Mbit/s then takes 0.8 s, inside the 2 s a doctor waits for a picture.
	BurstRate float64
	// KeyframeInterval is the least time between two keyframe requests (PLI) sent to
	// one box, however many viewers ask. Default 500 ms.
	KeyframeInterval time.Duration
	// SessionTimeout is how long a session may receive nothing before it is
	// forgotten; it must outlast a tunnel (30 s) so the box can restart ICE instead
	// of starting over. Default 60 s.
	SessionTimeout time.Duration
	// ReconnectGrace is how long viewers stay connected, without media, when a
	// box's session is lost without a goodbye (longer outage, reboot): when the box
	// publishes again within it, they see it again without reconnecting. Default 2
	// minutes.
	ReconnectGrace time.Duration

	// AuthorizePublisher decides who may publish: it returns the box's device ID
	// (the appliance derives it from the box's mTLS identity) or an error, which is
	// answered 403. Required.
	AuthorizePublisher func(r *http.Request) (device string, err error)
	// AuthorizeViewer decides who may watch device: it returns a name for the
	// viewer, for the audit (a user, a token's subject), or an error, answered 403.
	// Required.
	AuthorizeViewer func(r *http.Request, device string) (viewer string, err error)

	// OnPublisherMessage, if set, is called with every message a box sends on any
	// data channel, after it was relayed to the viewers' channels of that label (the
	// hub stores vitals here); a non-nil reply is sent back to the box on the same
	// channel (an acknowledgement). It runs on the channel's own goroutine: messages
	// of one channel arrive in order, and a slow hook delays that channel only.
	OnPublisherMessage func(device, label string, data []byte) (reply []byte)
	// OnViewerControl, if set, is called with every message a viewer sends on its
	// control channel; it may forward it to the box with SendToPublisher, or start
	// the viewer's talk-back with Talkback(v.Device, v.Session).
	OnViewerControl func(v ViewerInfo, data []byte)
	// OnEvent, if set, receives session and viewer events for the audit. It must
	// not block for long: it runs on the SFU's goroutines.
	OnEvent func(Event)

	// Log receives the SFU's log lines. Default slog.Default().
	Log *slog.Logger
	// Registerer, if set, receives the SFU's metrics.
	Registerer prometheus.Registerer
}

// populate fills in defaults, in one place.
func (c Config) populate() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8445"
	}
	if c.TCPListen == "" {
		c.TCPListen = c.Listen
	}
	if len(c.Addresses) == 0 {
		if host, _, err := net.SplitHostPort(c.Listen); err == nil && host != "" {
			c.Addresses = []string{host}
		}
	}
	if c.WHIPPath == "" {
		c.WHIPPath = "/whip"
	}
	if c.WHEPPath == "" {
		c.WHEPPath = "/whep"
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 64
	}
	if c.MaxViewers == 0 {
		c.MaxViewers = 16
	}
	if c.MaxBody == 0 {
		c.MaxBody = 64 << 10
	}
	if c.PacketCache == 0 {
		c.PacketCache = 4096
	}
	if c.ViewerQueue == 0 {
		c.ViewerQueue = 512
	}
	if c.ViewerDataBuffer == 0 {
		c.ViewerDataBuffer = 1 << 20
	}
	if c.BurstRate == 0 {
		c.BurstRate = 20e6
	}
	if c.KeyframeInterval == 0 {
		c.KeyframeInterval = 500 * time.Millisecond
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 60 * time.Second
	}
	if c.ReconnectGrace == 0 {
		c.ReconnectGrace = 2 * time.Minute
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// validate reports the first setting that cannot work, naming it.
func (c Config) validate() error {
	if c.AuthorizePublisher == nil || c.AuthorizeViewer == nil {
		return errors.New("sfu: AuthorizePublisher and AuthorizeViewer are required")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("sfu: listen %q: %w", c.Listen, err)
	}
	if c.TCPListen != "off" {
		if _, _, err := net.SplitHostPort(c.TCPListen); err != nil {
			return fmt.Errorf("sfu: tcp listen %q: %w", c.TCPListen, err)
		}
	}
	if len(c.Addresses) == 0 {
		return fmt.Errorf("sfu: listen %q has no host: give the addresses to announce", c.Listen)
	}
	for _, a := range c.Addresses {
		if ip := net.ParseIP(a); ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("sfu: address %q to announce is not a usable IP address", a)
		}
	}
	for name, p := range map[string]string{"WHIP path": c.WHIPPath, "WHEP path": c.WHEPPath} {
		if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
			return fmt.Errorf("sfu: %s %q must start and must not end with /", name, p)
		}
	}
	switch {
	case c.MaxSessions < 0, c.MaxViewers < 0, c.MaxBody < 0, c.ViewerQueue < 0, c.BurstRate < 0:
		return errors.New("sfu: limits must not be negative")
	case c.PacketCache < 64 || c.PacketCache > 1<<15:
		return fmt.Errorf("sfu: packet cache %d is outside 64…32768", c.PacketCache)
	case c.ReconnectGrace < 0:
		return errors.New("sfu: reconnect grace must not be negative")
	case c.KeyframeInterval < 0 || c.SessionTimeout < 5*time.Second:
		return fmt.Errorf("sfu: session timeout %s is under 5 s or keyframe interval negative", c.SessionTimeout)
	}
	return nil
}

// Event is something the hub audits: a box's session started or ended, a viewer
// joined or left.
type Event struct {
	Kind    EventKind
	Time    time.Time
	Device  string
	Session string // the WHIP or WHEP resource ID
	Viewer  string // who watches, from AuthorizeViewer (viewer events)
	Remote  string // the HTTP client's address
	Reason  string // why a session or view ended
}

// EventKind names an Event.
type EventKind string

// The events the SFU reports.
const (
	SessionStarted EventKind = "stream.session.started"
	SessionEnded   EventKind = "stream.session.ended"
	ViewerJoined   EventKind = "stream.viewer.joined"
	ViewerLeft     EventKind = "stream.viewer.left"
	// TalkbackStarted and TalkbackStopped: a viewer's microphone reaches the crew.
	TalkbackStarted EventKind = "stream.talkback.started"
	TalkbackStopped EventKind = "stream.talkback.stopped"
)

// ViewerInfo names one viewer session.
type ViewerInfo struct {
	Device  string // the box watched
	Session string // the WHEP resource ID
	Viewer  string // who, from AuthorizeViewer
	Remote  string // the HTTP client's address
}
