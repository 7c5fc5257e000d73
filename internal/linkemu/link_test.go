package linkemu

import (
	"testing"
	"time"
)

// TestLinkRTT checks that a datagram's round trip across each profile is its RTT,
// within a few milliseconds (timer granularity and ±jitter).
func TestLinkRTT(t *testing.T) {
	for _, name := range []string{"5g-urban", "4g-rural"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, _ := ProfileByName(name)
			p = p.WithLoss(0)
			l := startLink(t, p)
			echo := udpEcho(t, l, nil)
			c := listenUDP(t, l, Box, netipUnspecified)
			rtts := ping(t, c, echo, 50, 20*time.Millisecond, 300*time.Millisecond)
			med, n := median(rtts)
			t.Logf("%s: median RTT %v over %d pings (profile %v)", name, med, n, p.RTT())
			if n != len(rtts) {
				t.Errorf("%d of %d pings lost on a loss-free link", len(rtts)-n, len(rtts))
			}
			if d := med - p.RTT(); d < -time.Millisecond || d > 3*time.Millisecond {
				t.Errorf("median RTT %v, want %v within -1/+3 ms", med, p.RTT())
			}
		})
	}
}
