package whip

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"lifeline/internal/service"
	"lifeline/internal/wait"
)

// ringRoute is a Route over endpoints that moves to the next on every report of the
// one in use, as a box's route does when the next hub is in reach.
type ringRoute struct {
	mu        sync.Mutex
	endpoints []string
	cur       int
	reports   []string
}

func (r *ringRoute) Endpoint() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endpoints[r.cur]
}

func (r *ringRoute) Unreachable(endpoint string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, endpoint)
	if endpoint == r.endpoints[r.cur] {
		r.cur = (r.cur + 1) % len(r.endpoints)
	}
}

// TestRouteTriesTheNextEndpointAtOnce: with a route over two endpoints that give no
// session, the publisher tells the route of each failure and tries the endpoint it
// names next at once; once both failed since the last session, it backs off before
// the next round, as with one endpoint.
func TestRouteTriesTheNextEndpointAtOnce(t *testing.T) {
	type post struct {
		at   time.Time
		name string
	}
	var mu sync.Mutex
	var posts []post
	failing := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			posts = append(posts, post{time.Now(), name})
			mu.Unlock()
			http.Error(w, "no sessions here", http.StatusServiceUnavailable)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := failing("a"), failing("b")
	route := &ringRoute{endpoints: []string{a.URL + "/whip", b.URL + "/whip"}}
	const backoff = 300 * time.Millisecond
	p, err := New(Config{Route: route, Loopback: true, Interfaces: []string{"lo"}, RetryInitial: backoff, RetryMax: backoff})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, &service.Health{}) }()
	wait.For(t, 20*time.Second, "four offers", func() bool { mu.Lock(); defer mu.Unlock(); return len(posts) >= 4 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, want := range []string{"a", "b", "a", "b"} {
		if posts[i].name != want {
			t.Fatalf("offer %d went to %s, want %s: the route's choice was not followed", i+1, posts[i].name, want)
		}
	}
	if gap := posts[1].at.Sub(posts[0].at); gap >= backoff {
		t.Errorf("the second endpoint was tried %s after the first failed, want at once", gap)
	}
	if gap := posts[2].at.Sub(posts[1].at); gap < backoff {
		t.Errorf("a new round began %s after both failed, want the %s back-off", gap, backoff)
	}
	route.mu.Lock()
	defer route.mu.Unlock()
	if len(route.reports) < 3 || route.reports[0] != a.URL+"/whip" || route.reports[1] != b.URL+"/whip" {
		t.Errorf("the route was told %v", route.reports)
	}
}
