package appliance

import (
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"sync"
	"time"
)

// hubRoute is the box's choice among the addresses of its hub (HubLink.URLs): several
// hub processes on one shared state, any of which serves the box. The box stays with
// the one it uses while that one is in reach, so that its uploads and live session
// stay on one hub, and moves to the next in order when it is not; a hub that answers,
// even with a refusal, is in reach, since every hub of the state gives the same
// answer.
//
// The hub-link check moves the route; the parts that open a connection per request
// or per session (position reports, certificate renewal, the live stream's sessions
// through whipRoute, the forwarder's uploads through forwardRoute) take Current each
// time, and a part that found the current hub out of reach says so (unreachable), so
// that the route moves at once.
type hubRoute struct {
	urls []string
	// life ends when the box shuts down (stop), cutting short the checks that
	// parts' reports started, so that no part's Close waits for one.
	life context.Context
	stop context.CancelFunc

	mu  sync.Mutex
	cur int
}

func newHubRoute(l HubLink) *hubRoute {
	life, stop := context.WithCancel(context.Background())
	return &hubRoute{urls: l.URLs(), life: life, stop: stop}
}

// Current is the address the box uses now.
func (r *hubRoute) Current() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.urls[r.cur]
}

// check runs checkHub on the current address and, while the hub there is out of
// reach, on the next ones, once round; the first in reach becomes the current one.
// It returns the check of the hub now used, or the current one's when none is in
// reach.
func (r *hubRoute) check(ctx context.Context, tlsConf *tls.Config) Check {
	r.mu.Lock()
	start := r.cur
	r.mu.Unlock()
	var first Check
	for i := range r.urls {
		n := (start + i) % len(r.urls)
		c := checkHub(ctx, r.urls[n], tlsConf)
		if i == 0 {
			first = c
		}
		if c.Result == "ok" || inReach(ctx, r.urls[n]) {
			r.mu.Lock()
			r.cur = n
			r.mu.Unlock()
			return c
		}
		if ctx.Err() != nil {
			break
		}
	}
	return first
}

// unreachable is told that hubURL did not answer a part of the box. If it is the
// hub in use, the route checks at once and moves to the next in reach, rather than at
// the hub-link check's next round; when none is in reach (a tunnel) it stays.
func (r *hubRoute) unreachable(ctx context.Context, hubURL string, tlsConf *tls.Config) {
	if len(r.urls) < 2 || r.Current() != hubURL {
		return
	}
	r.check(ctx, tlsConf)
}

// inReach reports whether a TCP connection to the hub's address can be made.
func inReach(ctx context.Context, hubURL string) bool {
	u, err := url.Parse(hubURL)
	if err != nil {
		return false
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
