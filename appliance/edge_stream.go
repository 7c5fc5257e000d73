package appliance

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"lifeline/internal/service"
	"lifeline/internal/trust"
	"lifeline/stream/camera"
	"lifeline/stream/talkback"
	"lifeline/stream/vitals"
	"lifeline/stream/whip"
)

// liveStream is the box's one live publication: the monitors' vitals through the
// durable outbox, the camera as it encodes, and the WHIP publisher that carries both
// to the hospital. It is built once, when the box can present its identity, and kept
// across the supervisor's restarts of its services.
type liveStream struct {
	outbox  *vitals.Outbox
	pub     *whip.Publisher
	cam     *camera.Camera // nil when no [[camera]] is configured
	rate    *rateChooser
	forward forwardShare
	talk    *talkback.Sink // nil without [stream] talkback_sink
}

// maxCrewMessages bounds the guidance messages the box keeps for the status page.
const maxCrewMessages = 50

// hubWHIPPath is where the enrolled hub takes a box's publication (stream/sfu's default).
const hubWHIPPath = "/whip"

// addStream adds the live stream's services: the publisher, the vitals outbox and the
// camera each run (and fail, and restart) on their own, so that a camera that fails
// never stops the vitals.
func (e *Edge) addStream() {
	s := e.cfg.Stream
	if !s.Enabled {
		return
	}
	reason := "the live stream presents the box's certificate: enrol the box first"
	build := func(ctx context.Context, h *service.Health) (*liveStream, error) {
		if s.WHIPURL != "" {
			// A hospital's own WHIP server does not need the box to be enrolled.
			return e.stream.buildNow(func() (*liveStream, error) { return e.newLiveStream(e.identityIfEnrolled()) })
		}
		return e.stream.build(ctx, h, e.dataDir, reason, e.newLiveStream)
	}
	e.sup.Add(service.Service{
		Name: "live-stream",
		Run: func(ctx context.Context, h *service.Health) error {
			ls, err := build(ctx, h)
			if err != nil {
				return err
			}
			return ls.publish(ctx, h)
		},
		Status: func() any {
			if ls, ok := e.stream.get(); ok {
				return ls.status(e.crew)
			}
			return nil
		},
	})
	e.sup.Add(service.Service{
		Name: "vitals-outbox",
		Run: func(ctx context.Context, h *service.Health) error {
			ls, err := build(ctx, h)
			if err != nil {
				return err
			}
			h.Ready("every numeric, alarm and device event is kept on disk until the hub acknowledges it")
			go e.crew.streamStarted(ctx, ls) // its commit needs the outbox running
			return ls.outbox.Run(ctx)
		},
		Status: func() any {
			if ls, ok := e.stream.get(); ok {
				return ls.outbox.Stats()
			}
			return nil
		},
	})
	if s.TalkbackSink != "" {
		e.sup.Add(service.Service{
			Name: "talkback",
			Run: func(ctx context.Context, h *service.Health) error {
				ls, err := build(ctx, h)
				if err != nil {
					return err
				}
				h.Ready("the hospital's push-to-talk plays on " + s.TalkbackSink)
				return ls.talk.Run(ctx)
			},
			Status: func() any {
				if ls, ok := e.stream.get(); ok {
					return ls.talk.Status()
				}
				return nil
			},
		})
	}
	if len(e.cfg.Camera) == 0 {
		return
	}
	e.sup.Add(service.Service{
		Name: "camera",
		Run: func(ctx context.Context, h *service.Health) error {
			ls, err := build(ctx, h)
			if err != nil {
				return err
			}
			return ls.runCamera(ctx, h)
		},
		Status: func() any {
			if ls, ok := e.stream.get(); ok && ls.cam != nil {
				return ls.cam.Status()
			}
			return nil
		},
	})
}

// identityIfEnrolled returns the box's identity, or nil before enrolment.
func (e *Edge) identityIfEnrolled() *trust.Identity {
	id, err := trust.LoadIdentity(IdentityDir(e.dataDir))
	if err != nil {
		return nil
	}
	return id
}

// newLiveStream builds the stream for the box with identity id (nil when publishing
// to a hospital's own WHIP server before enrolment).
func (e *Edge) newLiveStream(id *trust.Identity) (*liveStream, error) {
	s := e.cfg.Stream
	device := streamDeviceName(id)
	ls := &liveStream{}
	outbox, err := vitals.NewOutbox(vitals.OutboxConfig{
		Store: e.store, Bus: e.bus, Device: device,
		Log: e.log, Registerer: e.reg,
		OnControl: e.crew.noteControl,
	})
	if err != nil {
		return nil, err
	}
	ls.outbox = outbox
	var audio camera.Codec
	if len(e.cfg.Camera) > 0 {
		cam := e.cfg.Camera[0]
		if ls.cam, err = camera.OpenCamera(cam.URL, cam.SubURL, camera.Options{}); err != nil {
			return nil, fmt.Errorf("camera.url: %w", err)
		}
		// The embedded clip carries Opus; a real camera's audio is known only once it
		// answers, so its audio is forwarded when it is Opus too.
		audio = camera.Opus
	}
	if s.TalkbackSink != "" {
		if ls.talk, err = talkback.Open(s.TalkbackSink, e.log.With("service", "talkback")); err != nil {
			return nil, fmt.Errorf("stream.talkback_sink: %w", err)
		}
	}
	ls.rate = newRateChooser(ls.cam)
	ls.forward = forwardShare{set: e.forwarderCap, configured: int64(e.cfg.Forward.MaxRateMbit * 1e6)}
	cfg := whip.Config{
		Endpoint:          e.cfg.Hub.URL + hubWHIPPath,
		Audio:             audio,
		DataChannels:      ls.dataChannels(),
		OnKeyframeRequest: ls.requestKeyframe,
		OnVideoBudget:     ls.rate.budget,
		Interfaces:        s.Interfaces,
		Loopback:          loopbackURL(e.cfg.Hub.URL),
		Log:               e.log.With("service", "live-stream"),
	}
	if ls.talk != nil {
		cfg.OnTalkback = ls.talk.Write
	}
	if s.WHIPURL != "" {
		cfg.Endpoint, cfg.BearerToken, cfg.Loopback = s.WHIPURL, s.BearerToken, loopbackURL(s.WHIPURL)
		if id != nil && strings.HasPrefix(s.WHIPURL, e.cfg.Hub.URL) {
			cfg.TLS = id.ClientTLS()
		}
	} else {
		cfg.TLS = id.ClientTLS()
		cfg.Route = whipRoute{hubs: e.hubs, tls: cfg.TLS}
	}
	if ls.pub, err = whip.New(cfg); err != nil {
		return nil, err
	}
	return ls, nil
}

// whipRoute is the box's hub route as the publisher sees it: each session goes to
// the hub the box uses now, and a hub the publisher could not reach moves the route
// at once, for the publisher and for the box's other parts alike.
type whipRoute struct {
	hubs *hubRoute
	tls  *tls.Config
}

// routeCheckTimeout bounds the check of the hubs a publisher's report starts.
const routeCheckTimeout = 15 * time.Second

func (r whipRoute) Endpoint() string { return r.hubs.Current() + hubWHIPPath }

func (r whipRoute) Unreachable(endpoint string) {
	ctx, cancel := context.WithTimeout(context.Background(), routeCheckTimeout)
	defer cancel()
	r.hubs.unreachable(ctx, strings.TrimSuffix(endpoint, hubWHIPPath), r.tls)
}

// streamDeviceName is the name the vitals carry: the enrolled device ID, or before
// enrolment the host name, so that a hospital's WHIP server can still tell boxes apart.
func streamDeviceName(id *trust.Identity) string {
	if id != nil {
		return id.DeviceID
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		return "unenrolled-" + host
	}
	return "unenrolled"
}

// waveBacklog is the most waveform data that may wait unsent: about 0.4 s of a
// 12-lead monitor. Beyond it the link is not carrying the waves in time, and the
// samples are refused and the next chunk marks the gap, rather than being delivered
// seconds late as if nothing had happened.
const waveBacklog = 32 << 10

// dataChannels wires the vitals outbox to the publisher's channels: numerics, alarms
// and device events reliably, waveforms without retransmission, and the hospital's
// guidance on control. The messages are JSON (stream/VITALS.md), sent as text so
// that browsers get them as strings.
func (ls *liveStream) dataChannels() []whip.DataChannel {
	noRetransmits := uint16(0)
	fromHub := func(data []byte) { ls.outbox.HandleFromHub(data) }
	return []whip.DataChannel{
		{Label: vitals.LabelWave, Text: true, MaxRetransmits: &noRetransmits, MaxBuffered: waveBacklog, OnOpen: ls.outbox.OpenWave, OnClose: ls.outbox.CloseWave},
		{Label: vitals.LabelReliable, Text: true, Ordered: true, OnOpen: ls.outbox.OpenReliable, OnMessage: fromHub, OnClose: ls.outbox.CloseReliable},
		{Label: vitals.LabelControl, Text: true, Ordered: true, OnMessage: fromHub},
	}
}

func (ls *liveStream) requestKeyframe() {
	if ls.cam != nil {
		ls.cam.RequestKeyframe()
	}
}

// runCamera forwards the camera's frames to the publisher as they were encoded,
// reporting the camera's state; a camera the browsers cannot show is degraded with the
// reason in words, never a black screen without one.
func (ls *liveStream) runCamera(ctx context.Context, h *service.Health) error {
	errc := make(chan error, 1)
	go func() {
		errc <- ls.cam.Run(ctx, func(f camera.Frame) {
			ls.rate.frame(f)
			if f.Codec == camera.H264 {
				ls.pub.WriteVideo(f)
			} else {
				ls.pub.WriteAudio(f)
			}
		})
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		st := ls.cam.Status()
		switch {
		case !st.Forwardable && len(st.Problems) > 0:
			h.Degraded(strings.Join(st.Problems, " "), nil)
		case st.Connected:
			h.Ready(fmt.Sprintf("%s %s %dx%d from %s", st.Codec, st.Profile, st.Width, st.Height, st.URL))
		case st.LastError != "":
			h.Degraded("camera not sending: "+st.URL, fmt.Errorf("%s", st.LastError))
		}
		select {
		case err := <-errc:
			return err
		case <-tick.C:
		}
	}
}

// streamStatus is the live stream's entry in /api/v1/status.
type streamStatus struct {
	Publisher whip.Status      `json:"publisher"`
	Messages  []vitals.Control `json:"messages_from_hospital,omitempty"`
	Stream    string           `json:"camera_stream,omitempty"` // "main" or "sub"
}

func (ls *liveStream) status(crew *crewDesk) streamStatus {
	var msgs []vitals.Control
	for _, m := range crew.view().Messages {
		msgs = append(msgs, m.Control)
	}
	return streamStatus{Publisher: ls.pub.Status(), Messages: msgs, Stream: ls.rate.stream()}
}

// forwarderCap sets the DICOM forwarder's bandwidth cap, when it exists yet.
func (e *Edge) forwarderCap(bitsPerSecond int64) {
	if fw, ok := e.forwarder.get(); ok {
		fw.SetBandwidthCap(bitsPerSecond)
	}
}

// loopbackURL reports whether raw names a host on this machine, where the publisher
// must offer loopback candidates (the demo, tests).
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && isLoopbackHost(u.Hostname())
}
