package whip

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtcp"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"lifeline/internal/hostaddr"
)

// ICE timing of the box's peer connection: the link is declared disconnected after
// iceDisconnected without a packet from the far end, which keepalives every
// iceKeepalive make a fair test; failed is left long because the publisher restarts
// ICE itself long before.
const (
	iceDisconnected = 1500 * time.Millisecond
	iceFailed       = 30 * time.Second
	iceKeepalive    = 500 * time.Millisecond
	// sctpRTOMax caps SCTP's retransmission timeout so that reliable vitals queued
	// during an outage leave within a second of the link returning, not after a
	// back-off grown to a minute.
	sctpRTOMax = time.Second
	// maxDataMessage bounds one data channel message either way.
	maxDataMessage = 64 << 10
)

// session is one WHIP session: a peer connection and the resource the endpoint
// created for it. Its fields after creation are touched only by Run's goroutine,
// except what the mutex guards for Status.
type session struct {
	pc *webrtc.PeerConnection
	// endpoint is where the session was published; its URL is url.
	endpoint *endpoint
	url      string
	// stateChanged tells Run that the connection's state changed; notices coalesce,
	// so that pion never waits for Run and no change is lost.
	stateChanged chan struct{}

	mu       sync.Mutex
	resource *url.URL
	etag     string
	answer   string // the remote description in force, rewritten by each ICE restart
	// pendingFrag is the fragment of an ICE restart offer whose PATCH has not been
	// answered yet; a failed PATCH is retried with it rather than with new credentials,
	// while the box's addresses are still pendingAddrs, those its candidates carry.
	pendingFrag  string
	pendingAddrs uint64 // hostaddr.Fingerprint
	// network is the session's view of the box's interfaces. pion reads it once, so it
	// is read again before every ICE restart: after a handover the modem has a new
	// address, and candidates on the old one can never connect.
	network *stdnet.Net
	// pair is the candidate pair ICE selected, as pion reports it: asking the ICE
	// transport for it while ICE starts races inside pion.
	pair string

	channels    []*boxChannel
	rtcpReaders sync.WaitGroup
}

// open builds a peer connection with the box's tracks and data channels, POSTs its
// offer and applies the answer. The session then connects on its own; its
// stateChanged channel tells when its state changes.
func (p *Publisher) open(ctx context.Context, endpointURL string) (*session, error) {
	ep, err := p.endpointFor(endpointURL)
	if err != nil {
		return nil, err
	}
	s := &session{stateChanged: make(chan struct{}, 1), endpoint: ep, url: endpointURL}
	network, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("whip: network interfaces: %w", err)
	}
	s.network = network
	api, err := p.newAPI(network)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	servers := append(slices.Clone(p.cfg.ICEServers), p.linkServers...)
	p.mu.Unlock()
	s.pc, err = api.NewPeerConnection(webrtc.Configuration{ICEServers: servers, BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return nil, fmt.Errorf("whip: new peer connection: %w", err)
	}
	s.pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) {
		s.mu.Lock()
		s.pair = pair.String()
		s.mu.Unlock()
	})
	if err := p.addMedia(s); err != nil {
		s.close()
		return nil, err
	}
	for _, spec := range p.cfg.DataChannels {
		ch, err := openDataChannel(s.pc, spec)
		if err != nil {
			s.close()
			return nil, err
		}
		s.channels = append(s.channels, ch)
	}
	s.pc.OnConnectionStateChange(func(webrtc.PeerConnectionState) {
		select {
		case s.stateChanged <- struct{}{}:
		default: // a notice is pending; Run reads the state in force when it takes it
		}
	})
	offer, err := p.localOffer(ctx, s.pc, nil, p.cfg.GatherTimeout)
	if err != nil {
		s.close()
		return nil, err
	}
	pub, err := s.endpoint.publish(ctx, offer)
	if err != nil {
		s.close()
		return nil, err
	}
	s.resource, s.etag, s.answer = pub.resource, pub.etag, pub.answer
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: pub.answer}); err != nil {
		p.end(s)
		return nil, fmt.Errorf("whip: answer from %s: %w", endpointURL, err)
	}
	p.useLinkServers(s, pub.iceServers)
	return s, nil
}

// newAPI builds the WebRTC stack for one session: the box's codecs only, NACK
// responses from a send buffer, RTCP reports, transport-wide congestion control
// feedback and Google Congestion Control on it.
func (p *Publisher) newAPI(network *stdnet.Net) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := p.media.register(me, p.cfg.VideoProfileLevelID); err != nil {
		return nil, err
	}
	if p.cfg.OnTalkback != nil {
		if err := p.media.registerTalkback(me); err != nil {
			return nil, err
		}
	}
	reg := &interceptor.Registry{}
	controller, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(p.cfg.InitialBitrate),
			gcc.SendSideBWEMinBitrate(p.cfg.MinBitrate),
			gcc.SendSideBWEMaxBitrate(p.cfg.MaxBitrate),
			// The video gate drops whole frames instead of queueing packets (see
			// videoGate), so no pacer queue may hold audio behind video.
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
		)
	})
	if err != nil {
		return nil, fmt.Errorf("whip: congestion controller: %w", err)
	}
	controller.OnNewPeerConnection(func(_ string, est cc.BandwidthEstimator) {
		p.bitrateChanged(est.GetTargetBitrate())
		// Called with the estimator's lock held: only store the value.
		est.OnTargetBitrateChange(p.bitrateChanged)
	})
	reg.Add(controller)
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, reg); err != nil {
		return nil, fmt.Errorf("whip: TWCC: %w", err)
	}
	if err := webrtc.ConfigureNack(me, reg); err != nil {
		return nil, fmt.Errorf("whip: NACK: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, fmt.Errorf("whip: RTCP reports: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetNet(network)
	se.SetICETimeouts(iceDisconnected, iceFailed, iceKeepalive)
	se.SetSCTPRTOMax(sctpRTOMax)
	// The hospital's control messages are short; a far end may not make the box
	// buffer more than this for one message.
	se.SetSCTPMaxMessageSize(maxDataMessage)
	se.SetIncludeLoopbackCandidate(p.cfg.Loopback)
	if len(p.cfg.Interfaces) > 0 {
		ifaces := slices.Clone(p.cfg.Interfaces)
		se.SetInterfaceFilter(func(name string) bool { return slices.Contains(ifaces, name) })
	}
	// mDNS names would hide the box's addresses from a server that cannot resolve
	// them; the box has nothing to hide from its hub.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// addMedia adds the box's send-only tracks and starts one RTCP reader per sender:
// pion's interceptors (NACK, congestion control) only see RTCP that is read, and the
// readers pass PLI and FIR on as keyframe requests. The readers end when the peer
// connection closes; close waits for them.
func (p *Publisher) addMedia(s *session) error {
	tracks := []webrtc.TrackLocal{p.media.video}
	if p.media.audio != nil {
		tracks = append(tracks, p.media.audio)
	}
	var camAudio *webrtc.RTPTransceiver
	for _, t := range tracks {
		tr, err := s.pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fmt.Errorf("whip: add %s track: %w", t.Kind(), err)
		}
		if t.Kind() == webrtc.RTPCodecTypeAudio {
			camAudio = tr
		}
		sender := tr.Sender()
		s.rtcpReaders.Add(1)
		go func() {
			defer s.rtcpReaders.Done()
			p.readRTCP(sender)
		}()
	}
	if p.cfg.OnTalkback != nil {
		return p.addTalkback(s, camAudio)
	}
	return nil
}

func (p *Publisher) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.keyframeWanted()
			}
		}
	}
}

// localOffer sets a new local offer and returns it once ICE gathering completed or
// gatherFor passed, whichever is first: the box does not trickle, so the offer it
// sends must carry its candidates.
func (p *Publisher) localOffer(ctx context.Context, pc *webrtc.PeerConnection, opts *webrtc.OfferOptions, gatherFor time.Duration) (string, error) {
	offer, err := pc.CreateOffer(opts)
	if err != nil {
		return "", fmt.Errorf("whip: create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("whip: set local offer: %w", err)
	}
	t := time.NewTimer(gatherFor)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		p.cfg.Log.Warn("whip: ICE gathering incomplete; offering the candidates found", "after", gatherFor)
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return pc.LocalDescription().SDP, nil
}

// useLinkServers adopts the STUN and TURN servers an endpoint announced. The running
// session gathered without them; they take effect at its next ICE restart and in
// every later session.
func (p *Publisher) useLinkServers(s *session, servers []webrtc.ICEServer) {
	if len(servers) == 0 {
		return
	}
	p.mu.Lock()
	p.linkServers = servers
	all := append(slices.Clone(p.cfg.ICEServers), servers...)
	p.mu.Unlock()
	conf := s.pc.GetConfiguration()
	if slices.EqualFunc(conf.ICEServers, all, sameICEServer) {
		return
	}
	if s.pc.ICEGatheringState() != webrtc.ICEGatheringStateComplete {
		// pion's gatherer reads its server list unguarded while it gathers; the
		// servers wait for the next session rather than race it.
		return
	}
	conf.ICEServers = all
	if err := s.pc.SetConfiguration(conf); err != nil {
		p.cfg.Log.Warn("whip: ICE servers from Link headers not usable", "err", err)
	}
}

func sameICEServer(a, b webrtc.ICEServer) bool {
	return slices.Equal(a.URLs, b.URLs) && a.Username == b.Username && a.Credential == b.Credential
}

// restartICE restarts the session's ICE over WHIP PATCH (RFC 9725 §4.3): a restart
// offer with new credentials, its fragment PATCHed with If-Match, and the endpoint's
// new credentials and candidates applied as the remote description. A fragment whose
// PATCH failed on the way is sent again as it is: pion cannot roll a local offer
// back. When the box's addresses changed since that offer was made (a handover while
// its PATCH was lost), its candidates can never connect; stale then says so, and the
// caller restarts again at once, with an offer made now. A change while the PATCH
// waits ends it with errAddressChanged, for the same reason.
func (p *Publisher) restartICE(ctx context.Context, s *session) (stale bool, err error) {
	if err := s.network.UpdateInterfaces(); err != nil {
		p.cfg.Log.Warn("whip: reading the network interfaces before an ICE restart", "err", err)
	}
	addrs := hostaddr.Fingerprint()
	s.mu.Lock()
	frag := s.pendingFrag
	stale = frag != "" && addrs != s.pendingAddrs
	s.mu.Unlock()
	if frag == "" {
		// Host candidates are there at once; a STUN server behind the link that just
		// dropped may not answer at all, and the picture is waiting.
		gatherFor := min(p.cfg.GatherTimeout, p.cfg.RestartTimeout/2)
		offer, err := p.localOffer(ctx, s.pc, &webrtc.OfferOptions{ICERestart: true}, gatherFor)
		if err != nil {
			return false, err
		}
		if frag, err = restartFragment(offer); err != nil {
			return false, fmt.Errorf("whip: %w", err)
		}
		s.mu.Lock()
		s.pendingFrag, s.pendingAddrs = frag, addrs
		s.mu.Unlock()
	}
	s.endpoint.forgetConnections()
	s.mu.Lock()
	resource, etag := s.resource, s.etag
	s.mu.Unlock()
	patchCtx, cancel := context.WithCancelCause(ctx)
	var watch sync.WaitGroup
	watch.Go(func() { cancelOnAddressChange(patchCtx, cancel, addrs) })
	answerFrag, newETag, err := s.endpoint.restartICE(patchCtx, min(p.cfg.HTTPTimeout, p.cfg.RestartTimeout), resource, etag, frag)
	moved := context.Cause(patchCtx) == errAddressChanged
	cancel(nil)
	watch.Wait()
	switch {
	case err != nil && moved:
		return false, fmt.Errorf("whip: PATCH %s: %w while it waited", resource, errAddressChanged)
	case err != nil:
		return false, err
	}
	params, err := readICEParams(answerFrag)
	if err != nil {
		return false, &badRestartAnswer{fmt.Errorf("whip: PATCH %s: restart answer: %w", resource, err)}
	}
	s.mu.Lock()
	answer := withRemoteICE(s.answer, params)
	s.mu.Unlock()
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return false, &badRestartAnswer{fmt.Errorf("whip: PATCH %s: apply restart answer: %w", resource, err)}
	}
	s.mu.Lock()
	s.answer, s.pendingFrag = answer, ""
	if newETag != "" {
		s.etag = newETag
	}
	s.mu.Unlock()
	return stale || moved, nil
}

// badRestartAnswer is a restart the endpoint accepted with an answer the box cannot
// use: only a new session helps.
type badRestartAnswer struct{ err error }

func (e *badRestartAnswer) Error() string { return e.err.Error() }
func (e *badRestartAnswer) Unwrap() error { return e.err }

// needsNewSession reports whether a failed restart leaves only a new session.
func needsNewSession(err error) bool {
	var bad *badRestartAnswer
	return sessionGone(err) || errors.As(err, &bad)
}

// end DELETEs the session's resource, bounded by the HTTP timeout even when Run's ctx
// already ended (stopping is when the DELETE matters most), and closes it.
func (p *Publisher) end(s *session) {
	s.mu.Lock()
	resource := s.resource
	s.mu.Unlock()
	if resource != nil {
		if err := s.endpoint.end(context.Background(), resource); err != nil {
			p.cfg.Log.Warn("whip: session not deleted", "err", err)
		}
	}
	s.close()
}

func (s *session) close() {
	// Close reports errors of transports that never started; nothing is left to
	// release either way.
	_ = s.pc.Close()
	s.rtcpReaders.Wait()
	for _, ch := range s.channels {
		ch.closed()
	}
}

func (s *session) resourceURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resource == nil {
		return ""
	}
	return s.resource.String()
}

// selectedPair names the candidate pair ICE selected, for the status page.
func (s *session) selectedPair() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pair
}

// errAddressChanged ends an ICE restart's PATCH when the box's addresses change under
// it: sent from the old address, its answer would never arrive.
var errAddressChanged = errors.New("the box's address changed")

// addressWatchEvery is how often the box's addresses are read while a PATCH waits.
const addressWatchEvery = 200 * time.Millisecond

// cancelOnAddressChange cancels the PATCH's context with errAddressChanged when the
// box's addresses are no longer was. It returns when ctx ends.
func cancelOnAddressChange(ctx context.Context, cancel context.CancelCauseFunc, was uint64) {
	t := time.NewTicker(addressWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if hostaddr.Fingerprint() != was {
				cancel(errAddressChanged)
				return
			}
		}
	}
}
