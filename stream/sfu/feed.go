package sfu

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// feed is one box as its viewers see it: the box's current publication and the
// viewers watching it. A box that publishes again replaces the publication under the
// same feed, and the viewers move to the new one without noticing more than a
// keyframe's wait.
type feed struct {
	sfu    *SFU
	device string

	mu           sync.Mutex
	pub          *publication
	viewers      map[*viewer]struct{}
	pending      int         // viewers being negotiated, counted against MaxViewers
	lastKeyframe time.Time   // the last PLI sent to the box
	expiry       *time.Timer // while the box is gone and its viewers wait for it
}

// waitForBox keeps the viewers of a box whose session was lost, for grace, and
// detaches them from its tracks meanwhile. Called with f.mu held.
func (f *feed) waitForBox(grace time.Duration) {
	for v := range f.viewers {
		for _, vt := range v.tracks {
			if src := vt.currentSource(); src != nil {
				src.detach(vt)
			}
			vt.detach()
		}
	}
	f.stopWaiting()
	f.expiry = time.AfterFunc(grace, func() {
		f.sfu.expireFeed(f, fmt.Sprintf("the box did not publish again within %s", grace))
	})
}

// stopWaiting cancels the grace timer. Called with f.mu held.
func (f *feed) stopWaiting() {
	if f.expiry != nil {
		f.expiry.Stop()
		f.expiry = nil
	}
}

// requestKeyframe asks the box for a keyframe unless one was asked for within the
// keyframe interval: however many viewers join or lose a picture, the box's encoder
// (and its uplink) sees at most one request per interval.
func (f *feed) requestKeyframe() {
	f.mu.Lock()
	pub := f.pub
	now := time.Now()
	if pub == nil || now.Sub(f.lastKeyframe) < f.sfu.cfg.KeyframeInterval {
		f.mu.Unlock()
		if pub != nil {
			f.sfu.metrics.plisSuppressed.Inc()
		}
		return
	}
	f.lastKeyframe = now
	f.mu.Unlock()
	var pkts []rtcp.Packet
	for _, src := range pub.sources {
		if ssrc := src.ssrc.Load(); src.kind == webrtc.RTPCodecTypeVideo && ssrc != 0 {
			pkts = append(pkts, &rtcp.PictureLossIndication{MediaSSRC: ssrc})
		}
	}
	if len(pkts) == 0 {
		return
	}
	if err := pub.pc.WriteRTCP(pkts); err != nil {
		f.sfu.log.Debug("sfu: keyframe request to box failed", "device", f.device, "err", err)
		return
	}
	f.sfu.plisForwarded.Add(1)
	f.sfu.metrics.plisForwarded.Inc()
}

// attachViewer connects a viewer whose transport just came up to the box's current
// tracks. While the box's session is lost and the feed waits for it, the viewer
// waits too: the box's next session attaches it. It returns why the viewer cannot
// stay: the box is gone, or now sends another format.
func (f *feed) attachViewer(v *viewer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pub == nil {
		if f.expiry != nil {
			return nil
		}
		return errors.New("the box is no longer publishing")
	}
	for _, vt := range v.tracks {
		src := f.pub.sources[vt.kind]
		if src == nil || !sameFormat(src.codec, vt.codec) {
			return errors.New("the box now sends another format")
		}
		src.attach(vt)
	}
	return nil
}

// replace makes pub the box's publication and moves the attached viewers to its
// tracks. It returns the viewers that cannot follow (the box changed codec), for the
// caller to end outside the lock.
func (f *feed) replace(pub *publication) (old *publication, lost []*viewer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopWaiting()
	old, f.pub = f.pub, pub
	for v := range f.viewers {
		if !v.attached.Load() {
			continue // it attaches to the new publication when it connects
		}
		ok := true
		for _, vt := range v.tracks {
			if src := vt.currentSource(); src != nil {
				src.detach(vt)
			}
			vt.detach()
			src := pub.sources[vt.kind]
			if src == nil || !sameFormat(src.codec, vt.codec) {
				ok = false
				continue
			}
			src.attach(vt)
		}
		if !ok {
			lost = append(lost, v)
		}
	}
	return old, lost
}

// viewerList returns the viewers, for relaying a message outside the lock.
func (f *feed) viewerList() []*viewer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.viewerListLocked()
}

func (f *feed) viewerListLocked() []*viewer {
	out := make([]*viewer, 0, len(f.viewers))
	for v := range f.viewers {
		out = append(out, v)
	}
	return out
}

// sameFormat reports whether a viewer's track negotiated for a can carry packets of
// b: same codec and clock and, for H.264, the same profile and packetization mode
// (the level may differ, RFC 6184 §8.2.2).
func sameFormat(a, b webrtc.RTPCodecParameters) bool {
	if !strings.EqualFold(a.MimeType, b.MimeType) || a.ClockRate != b.ClockRate || a.Channels != b.Channels {
		return false
	}
	if !isH264(a.MimeType) {
		return true
	}
	fa, fb := fmtpParams(a.SDPFmtpLine), fmtpParams(b.SDPFmtpLine)
	pa, pb := fa["profile-level-id"], fb["profile-level-id"]
	return len(pa) >= 4 && len(pb) >= 4 && strings.EqualFold(pa[:4], pb[:4]) &&
		packetizationMode(fa) == packetizationMode(fb)
}

// fmtpParams splits an a=fmtp parameter line into its key=value pairs.
func fmtpParams(line string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		out[strings.ToLower(k)] = v
	}
	return out
}

// packetizationMode is the H.264 packetization mode of parsed fmtp parameters; an
// absent one means 0 (RFC 6184 §8.1).
func packetizationMode(p map[string]string) string {
	if m := p["packetization-mode"]; m != "" {
		return m
	}
	return "0"
}
