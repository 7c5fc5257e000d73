// Package whip is the box's WHIP publisher (RFC 9725): it publishes the ambulance's
// one live session (H.264 video as the camera encoded it, audio, and the vitals and
// control data channels) to the hub or to any standard WHIP endpoint, keeps it alive
// across the 5G link's drops with ICE restarts over PATCH, and tells the camera side
// how much video the link carries. It runs on the box.
//
// # Vitals and audio first
//
// Google Congestion Control, fed by transport-wide feedback from the far end, gives
// an estimate of what the uplink carries (TargetBitrate). Audio and the data
// channels are not limited by the box at all: a reserve for each (Config.AudioReserve,
// Config.DataReserve) is taken off the estimate, and only the rest is the video budget
// (VideoBudget). Video is the one stream the box holds back, in two ways: the camera
// side is told the budget and switches to its sub stream when the main stream does
// not fit, and a gate drops whole video frames (up to the next IDR) when video runs
// over its budget, rather than queue them where vitals would wait behind them. The
// vitals travel on SCTP, which has its own congestion control; with video kept below
// the estimate it always finds room. The gate never shuts below Config.VideoFloor, or
// the estimate, which only grows with what arrives, could never recover.
package whip

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"lifeline/internal/service"
	"lifeline/stream/camera"
)

// Config says where and how to publish. The zero value of every field but Endpoint
// (or Route) means its default.
type Config struct {
	// Endpoint is the WHIP endpoint URL the offer is POSTed to.
	Endpoint string
	// Route, if set, names the endpoint of each new session instead of Endpoint:
	// several endpoints serving the box (the hubs of one shared state), of which the
	// route says which to use now.
	Route Route
	// TLS authenticates the box by its mutual-TLS identity
	// (trust.Identity.ClientTLS()) and carries the roots it trusts; nil uses the
	// system roots and no client certificate.
	TLS *tls.Config
	// BearerToken, if set, is sent as "Authorization: Bearer …" on every request, for
	// WHIP servers that authenticate that way.
	BearerToken string

	// VideoProfileLevelID is the H.264 profile-level-id offered; default "42e01f"
	// (constrained baseline 3.1), which every browser decodes.
	VideoProfileLevelID string
	// Audio is the codec of the audio the caller writes: camera.Opus, camera.PCMU or
	// camera.PCMA, passed through as the source encoded it; empty means no audio.
	Audio camera.Codec
	// DataChannels are opened by the box in every session, in order.
	DataChannels []DataChannel

	// OnKeyframeRequest is called when the far end asks for a picture it can decode
	// from (PLI or FIR), and when a new session connects. The publisher never
	// transcodes, so only the camera side can act on it. It must not block.
	OnKeyframeRequest func()
	// OnTalkback, if set, makes the box offer to receive the hospital's voice
	// (push-to-talk) and is called with each RTP packet of it, G.711 µ-law
	// (TalkbackCodec), in arrival order. It runs on the stack's goroutine: it must not
	// block.
	OnTalkback func(*TalkbackPacket)
	// OnVideoBudget is called when the bitrate left for video changes (see
	// Publisher.VideoBudget). It must not block.
	OnVideoBudget func(bps int)

	// ICEServers are used besides any the endpoint announces in Link headers.
	ICEServers []webrtc.ICEServer
	// Interfaces, if set, limits ICE to these network interfaces (the modem's).
	Interfaces []string
	// Loopback allows ICE candidates on 127.0.0.1, for `lifeline demo` and tests.
	Loopback bool

	// InitialBitrate, MinBitrate and MaxBitrate bound the congestion controller's
	// estimate, in bit/s; defaults 1.5 Mbit/s, 150 kbit/s and 20 Mbit/s.
	InitialBitrate, MinBitrate, MaxBitrate int
	// AudioReserve and DataReserve are kept out of the video budget, in bit/s, so
	// that audio and the vitals channels always find room; defaults 80 kbit/s (one
	// Opus or G.711 stream with its overhead) and 200 kbit/s (a 12-lead waveform with
	// its framing, and room for replays).
	AudioReserve, DataReserve int
	// VideoFloor is the least the video gate lets through whatever the estimate,
	// in bit/s; default 300 kbit/s, a camera's sub stream. Without it the box would
	// starve its own estimate: GCC raises its estimate to at most 1.5 times what
	// arrives, so a gate shut at a low estimate would never open again.
	VideoFloor int

	// HTTPTimeout bounds each WHIP request; default 10 s.
	HTTPTimeout time.Duration
	// MaxAnswerSize bounds the endpoint's answers; default 64 KiB.
	MaxAnswerSize int64
	// ConnectTimeout bounds ICE and DTLS of a new session; default 10 s.
	ConnectTimeout time.Duration
	// RestartDelay is how long ICE may stay disconnected before the box restarts it;
	// default 500 ms. RestartTimeout bounds one ICE restart, from the PATCH to ICE
	// connected, and is also the pace of restarts while the link is down; default 2 s.
	// A PATCH may take as long (at most HTTPTimeout): one stuck on a connection the
	// handover killed is given up in time for the next restart, which then goes at
	// once, its period spent.
	RestartDelay, RestartTimeout time.Duration
	// RestartGiveUp is how long the box keeps restarting ICE in one session before it
	// opens a new one; default 2 minutes, well past a 30 s tunnel, about when a WHIP
	// server forgets a silent session.
	RestartGiveUp time.Duration
	// GatherTimeout bounds ICE candidate gathering before an offer is sent; default 3 s.
	GatherTimeout time.Duration
	// RetryInitial and RetryMax bound the back-off between failed sessions; defaults
	// 1 s and 30 s.
	RetryInitial, RetryMax time.Duration

	// Log receives the publisher's events; nil discards them.
	Log *slog.Logger
}

// DataChannel is one data channel the box opens in each session. The callbacks run
// on the WebRTC stack's goroutines and must not block.
type DataChannel struct {
	Label string
	// Ordered delivers messages in order.
	Ordered bool
	// MaxRetransmits, if set, makes the channel partially reliable: a message is
	// retransmitted at most this often (0: never, for samples that are useless late).
	// Nil means reliable.
	MaxRetransmits *uint16
	// Text sends every message as a WebRTC string message (UTF-8), so that a browser
	// at the far end receives strings, as it expects of JSON; otherwise binary.
	Text bool
	// MaxBuffered bounds what may wait unsent on this channel before send refuses;
	// zero means the package's MaxBuffered. A channel of samples that are useless late
	// sets it low, so that a dead link shows as refused sends (and a marked gap)
	// instead of a backlog delivered late.
	MaxBuffered uint64
	// OnOpen is called each time the channel opens, in every new session, with the
	// function that sends one message on it. send fails once the channel closed or
	// when more than MaxBuffered bytes wait unsent (the link is down); it never blocks.
	OnOpen func(send func([]byte) error)
	// OnMessage is called with each message from the far end.
	OnMessage func([]byte)
	// OnClose is called when the channel closed (the session ended).
	OnClose func()
}

// Route chooses the endpoint of each new session among several that serve the box.
// The publisher asks it before every session, and tells it when an endpoint could
// not be reached (a session could not be opened there, or an ICE restart of a session
// there found no path to it), so that it may move to another at once rather than at
// its own next check.
type Route interface {
	// Endpoint returns the WHIP endpoint URL to use now. It must not block.
	Endpoint() string
	// Unreachable says that endpoint was not reached. It may take a few seconds (to
	// see which endpoint is in reach); the publisher calls it from its own goroutine
	// when a session is running.
	Unreachable(endpoint string)
}

// MaxBuffered bounds what one data channel may hold unsent, so that a dead link does
// not grow the box's memory; the vitals package keeps its own durable replay ring.
const MaxBuffered = 1 << 20

// ErrBacklog is returned by a data channel's send when MaxBuffered bytes wait unsent.
var ErrBacklog = errors.New("whip: data channel backlog full")

// ErrNotOpen is returned by a data channel's send after the channel closed.
var ErrNotOpen = errors.New("whip: data channel not open")

func (c *Config) populate() {
	if c.VideoProfileLevelID == "" {
		c.VideoProfileLevelID = "42e01f"
	}
	setDefault(&c.InitialBitrate, 1_500_000)
	setDefault(&c.MinBitrate, 150_000)
	setDefault(&c.MaxBitrate, 20_000_000)
	setDefault(&c.AudioReserve, 80_000)
	setDefault(&c.DataReserve, 200_000)
	setDefault(&c.VideoFloor, 300_000)
	setDefault(&c.HTTPTimeout, 10*time.Second)
	setDefault(&c.MaxAnswerSize, 64<<10)
	setDefault(&c.ConnectTimeout, 10*time.Second)
	setDefault(&c.RestartDelay, 500*time.Millisecond)
	setDefault(&c.RestartTimeout, 2*time.Second)
	setDefault(&c.RestartGiveUp, 2*time.Minute)
	setDefault(&c.GatherTimeout, 3*time.Second)
	setDefault(&c.RetryInitial, time.Second)
	setDefault(&c.RetryMax, 30*time.Second)
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

func (c *Config) validate() error {
	switch c.Audio {
	case "", camera.Opus, camera.PCMU, camera.PCMA:
	default:
		return fmt.Errorf("whip: audio codec %q cannot be sent to a browser as it is", c.Audio)
	}
	if len(c.VideoProfileLevelID) != 6 {
		return fmt.Errorf("whip: profile-level-id %q is not 6 hex digits", c.VideoProfileLevelID)
	}
	if c.MinBitrate > c.MaxBitrate || c.InitialBitrate < c.MinBitrate || c.InitialBitrate > c.MaxBitrate {
		return fmt.Errorf("whip: bitrates min %d, initial %d, max %d are out of order", c.MinBitrate, c.InitialBitrate, c.MaxBitrate)
	}
	seen := map[string]bool{}
	for _, dc := range c.DataChannels {
		if dc.Label == "" || seen[dc.Label] {
			return fmt.Errorf("whip: data channel label %q is empty or repeated", dc.Label)
		}
		seen[dc.Label] = true
	}
	return nil
}

// State is where the publisher is in its life.
type State string

// Publisher states.
const (
	StateIdle       State = "idle"       // Run not started
	StateConnecting State = "connecting" // offer POSTed or ICE/DTLS of a new session under way
	StateConnected  State = "connected"  // media flows
	StateRestarting State = "restarting" // the link dropped; restarting ICE over PATCH
	StateWaiting    State = "waiting"    // the session failed; back-off before a new one
	StateStopped    State = "stopped"    // Run returned
)

// Status is the publisher's state for the status page and /api/v1/status.
type Status struct {
	State    State  `json:"state"`
	Endpoint string `json:"endpoint"`
	// Session is the WHIP session resource (the Location of the POST).
	Session      string `json:"session,omitempty"`
	ICEState     string `json:"ice_state,omitempty"`
	SelectedPair string `json:"selected_pair,omitempty"`
	// TargetBitrate is the congestion controller's estimate; VideoBudget what of it
	// is left for video after audio and data.
	TargetBitrate int `json:"target_bitrate_bps"`
	VideoBudget   int `json:"video_budget_bps"`
	// ICERestarts counts ICE restarts the endpoint accepted; NewSessions counts POSTs
	// that created a session.
	ICERestarts int `json:"ice_restarts"`
	NewSessions int `json:"new_sessions"`
	// FramesSent counts video frames sent; FramesDropped those not sent because no
	// session was connected, the budget was spent, or a keyframe was awaited;
	// FramesOverBudget those of them the video budget cost (the camera's stream is
	// more than the link carries: its sub stream would fit better).
	FramesSent       uint64    `json:"frames_sent"`
	FramesDropped    uint64    `json:"frames_dropped"`
	FramesOverBudget uint64    `json:"frames_over_budget"`
	KeyframeRequests uint64    `json:"keyframe_requests"`
	ConnectedSince   time.Time `json:"connected_since,omitzero"`
	LastError        string    `json:"last_error,omitempty"`
}

// Publisher publishes one live session to a WHIP endpoint. Create it with New, feed
// it with WriteVideo and WriteAudio from the camera's goroutine, and run it with Run.
type Publisher struct {
	cfg   Config
	media *tracks

	mu          sync.Mutex
	endpoints   map[string]*endpoint // by URL: each keeps its HTTP connections
	endpointNow string               // the endpoint of the current or last session
	state       State
	current     *session
	restarts    int
	sessions    int
	since       time.Time
	lastError   string
	linkServers []webrtc.ICEServer // announced by the endpoint in Link headers

	routeCalls sync.WaitGroup // Route.Unreachable calls made while a session runs

	targetBitrate atomic.Int64
	keyframeReqs  atomic.Uint64
	running       atomic.Bool
}

// Service returns the publisher as a service for the appliance's supervisor, with its
// Status in /api/v1/status.
func (p *Publisher) Service(name string) service.Service {
	return service.Service{Name: name, Run: p.Run, Status: func() any { return p.Status() }}
}

// New checks cfg and returns a publisher that has not connected yet.
func New(cfg Config) (*Publisher, error) {
	cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Publisher{cfg: cfg, endpoints: map[string]*endpoint{}, state: StateIdle}
	first := p.nextEndpoint()
	if _, err := p.endpointFor(first); err != nil {
		return nil, err
	}
	m, err := newMedia(cfg.Audio)
	if err != nil {
		return nil, err
	}
	p.media, p.endpointNow = m, first
	p.targetBitrate.Store(int64(cfg.InitialBitrate))
	m.setBudget(max(p.VideoBudget(), cfg.VideoFloor))
	return p, nil
}

// nextEndpoint is the endpoint for a new session: the route's choice, or Endpoint.
func (p *Publisher) nextEndpoint() string {
	if p.cfg.Route != nil {
		return p.cfg.Route.Endpoint()
	}
	return p.cfg.Endpoint
}

// endpointFor returns the endpoint client for raw, made on first use.
func (p *Publisher) endpointFor(raw string) (*endpoint, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ep, ok := p.endpoints[raw]; ok {
		return ep, nil
	}
	ep, err := newEndpoint(raw, p.cfg.TLS, p.cfg.BearerToken, p.cfg.HTTPTimeout, p.cfg.MaxAnswerSize)
	if err != nil {
		return nil, err
	}
	p.endpoints[raw] = ep
	return ep, nil
}

// TargetBitrate is the congestion controller's current estimate of what the link
// carries, in bit/s (the configured initial bitrate before the first session).
func (p *Publisher) TargetBitrate() int { return int(p.targetBitrate.Load()) }

// VideoBudget is what video may use of the estimate, in bit/s: the estimate less the
// audio and data reserves, never below zero. The camera side picks its main or sub
// stream by it, and the DICOM forwarder's bandwidth cap yields to it. The video gate
// lets through at least Config.VideoFloor even when the budget is lower.
func (p *Publisher) VideoBudget() int {
	return videoBudget(p.TargetBitrate(), p.cfg.AudioReserve, p.cfg.DataReserve, p.cfg.Audio != "")
}

func videoBudget(target, audioReserve, dataReserve int, audio bool) int {
	b := target - dataReserve
	if audio {
		b -= audioReserve
	}
	return max(b, 0)
}

// Status returns the publisher's current state.
func (p *Publisher) Status() Status {
	p.mu.Lock()
	st := Status{
		State: p.state, Endpoint: p.endpointNow, ICERestarts: p.restarts, NewSessions: p.sessions,
		ConnectedSince: p.since, LastError: p.lastError,
	}
	s := p.current
	p.mu.Unlock()
	if s != nil {
		st.Session = s.resourceURL()
		st.ICEState = s.pc.ICEConnectionState().String()
		st.SelectedPair = s.selectedPair()
	}
	st.TargetBitrate = p.TargetBitrate()
	st.VideoBudget = p.VideoBudget()
	st.FramesSent, st.FramesDropped, st.FramesOverBudget = p.media.counts()
	st.KeyframeRequests = p.keyframeReqs.Load()
	return st
}

func (p *Publisher) setState(s State) {
	p.mu.Lock()
	p.state = s
	if s != StateConnected {
		p.since = time.Time{}
	} else if p.since.IsZero() {
		p.since = time.Now()
	}
	p.mu.Unlock()
}

func (p *Publisher) recordError(err error) {
	p.mu.Lock()
	p.lastError = err.Error()
	endpoint := p.endpointNow
	p.mu.Unlock()
	p.cfg.Log.Warn("whip publisher", "endpoint", endpoint, "err", err)
}

// keyframeWanted passes a keyframe request on to the camera side.
func (p *Publisher) keyframeWanted() {
	p.keyframeReqs.Add(1)
	if p.cfg.OnKeyframeRequest != nil {
		p.cfg.OnKeyframeRequest()
	}
}

func (p *Publisher) bitrateChanged(bps int) {
	old := p.VideoBudget()
	p.targetBitrate.Store(int64(bps))
	budget := p.VideoBudget()
	p.media.setBudget(max(budget, p.cfg.VideoFloor))
	if budget != old && p.cfg.OnVideoBudget != nil {
		p.cfg.OnVideoBudget(budget)
	}
}
