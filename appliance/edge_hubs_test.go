package appliance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// hubStub is a hub that answers /api/v1/hello with code; trust makes a TLS client
// configuration that trusts every stub.
func hubStub(t *testing.T, code int, trust *x509.CertPool) string {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/hello" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	trust.AddCert(srv.Certificate())
	return srv.URL
}

// deadHub is an https URL on loopback where nothing listens.
func deadHub(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "https://" + addr
}

// TestHubRouteMovesOnOnlyWhenOutOfReach: the box moves from a hub out of reach to the
// next that answers; stays with a hub that answers even when later ones would too,
// and with one that refuses it (every hub of a state refuses alike); goes round the
// list; and keeps its place when no hub is in reach.
func TestHubRouteMovesOnOnlyWhenOutOfReach(t *testing.T) {
	ctx := context.Background()
	pool := x509.NewCertPool()
	tlsConf := &tls.Config{RootCAs: pool}
	okA, okB, refusing, dead := hubStub(t, http.StatusOK, pool), hubStub(t, http.StatusOK, pool), hubStub(t, http.StatusForbidden, pool), deadHub(t)

	r := newHubRoute(HubLink{URL: dead, FallbackURLs: []string{okA, okB}})
	if r.Current() != dead {
		t.Fatalf("a new route starts at %s, want hub.url %s", r.Current(), dead)
	}
	if c := r.check(ctx, tlsConf); c.Result != "ok" || r.Current() != okA {
		t.Fatalf("first hub out of reach: check %+v, now at %s; want ok at %s", c, r.Current(), okA)
	}
	if c := r.check(ctx, tlsConf); c.Result != "ok" || r.Current() != okA {
		t.Fatalf("hub in use answers: check %+v, now at %s; want to stay at %s", c, r.Current(), okA)
	}

	r = newHubRoute(HubLink{URL: refusing, FallbackURLs: []string{okA}})
	if c := r.check(ctx, tlsConf); c.Result == "ok" || r.Current() != refusing {
		t.Fatalf("hub in use refuses the box: check %+v, now at %s; want to stay at %s", c, r.Current(), refusing)
	}

	r = newHubRoute(HubLink{URL: okA, FallbackURLs: []string{dead}})
	r.cur = 1
	if c := r.check(ctx, tlsConf); c.Result != "ok" || r.Current() != okA {
		t.Fatalf("last hub out of reach: check %+v, now at %s; want round to %s", c, r.Current(), okA)
	}

	other := deadHub(t)
	r = newHubRoute(HubLink{URL: dead, FallbackURLs: []string{other}})
	r.cur = 1
	if c := r.check(ctx, tlsConf); c.Result == "ok" || r.Current() != other {
		t.Fatalf("no hub in reach: check %+v, now at %s; want to stay at %s", c, r.Current(), other)
	}
}

// TestForwardRouteMovesWhenTheForwarderReportsItsHub: the forwarder's report that the
// hub in use answers neither over QUIC nor TCP moves the route to the next hub in
// reach at once; a report about a hub the route has left changes nothing.
func TestForwardRouteMovesWhenTheForwarderReportsItsHub(t *testing.T) {
	pool := x509.NewCertPool()
	okA, okB, dead := hubStub(t, http.StatusOK, pool), hubStub(t, http.StatusOK, pool), deadHub(t)
	r := forwardRoute{hubs: newHubRoute(HubLink{URL: dead, FallbackURLs: []string{okA, okB}}), tls: &tls.Config{RootCAs: pool}}
	r.Unreachable(dead)
	if r.Current() != okA {
		t.Fatalf("after the forwarder's report the route is at %s, want %s", r.Current(), okA)
	}
	r.Unreachable(dead)
	if r.Current() != okA {
		t.Fatalf("a late report about the hub left moved the route to %s", r.Current())
	}
}

// TestForwardRouteCheckEndsWithTheBox: a check of the hubs that the forwarder's report
// started, held by a hub that accepts and never answers, ends when the box shuts down
// rather than after its own timeouts, so that the forwarder's Close does not wait.
func TestForwardRouteCheckEndsWithTheBox(t *testing.T) {
	pool := x509.NewCertPool()
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	pool.AddCert(srv.Certificate())
	r := forwardRoute{hubs: newHubRoute(HubLink{URL: srv.URL, FallbackURLs: []string{deadHub(t)}}), tls: &tls.Config{RootCAs: pool}}
	done := make(chan struct{})
	go func() { r.Unreachable(srv.URL); close(done) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("the check ended before the box shut down, though the hub never answers")
	default:
	}
	r.hubs.stop()
	select {
	case <-done:
	case <-time.After(3 * time.Second): // the hub check's own timeout is 5 s
		t.Fatal("the check went on after the box shut down")
	}
}
