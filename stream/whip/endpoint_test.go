package whip

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/internal/service"
	"lifeline/internal/trust"
	"lifeline/internal/wait"
)

const someOffer = "v=0\r\n"

// TestBadEndpointAnswers: every answer a broken or hostile endpoint can give to the
// offer ends in an error that names the endpoint and what was wrong, and nothing
// unbounded is read or followed.
func TestBadEndpointAnswers(t *testing.T) {
	release := make(chan struct{}) // lets the silent handler go when the test ends
	defer close(release)
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"server error", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "media server overloaded", http.StatusInternalServerError)
		}, "HTTP 500: media server overloaded"},
		{"wrong content type", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Location", "/whip/1")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "<html>login</html>")
		}, `content type "text/html", want application/sdp`},
		{"huge answer", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentTypeSDP)
			w.Header().Set("Location", "/whip/1")
			w.WriteHeader(http.StatusCreated)
			w.Write(make([]byte, 1<<20))
		}, "answer longer than 65536 bytes"},
		{"no location", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentTypeSDP)
			w.WriteHeader(http.StatusCreated)
		}, "201 without a Location header"},
		{"location elsewhere", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentTypeSDP)
			w.Header().Set("Location", "https://elsewhere.example/whip/1")
			w.WriteHeader(http.StatusCreated)
		}, "is on another origin"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/whip", http.StatusTemporaryRedirect)
		}, "HTTP 307"},
		{"bad ice-server link", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentTypeSDP)
			w.Header().Set("Location", "/whip/1")
			w.Header().Set("Link", `<http://evil.example>; rel="ice-server"`)
			w.WriteHeader(http.StatusCreated)
		}, "neither STUN nor TURN"},
		{"silent", func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, "no answer within 300ms"},
	}
	parent := t
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			// Closed after release: the silent handler holds its connection till then.
			parent.Cleanup(srv.Close)
			ep, err := newEndpoint(srv.URL+"/whip", nil, "", 300*time.Millisecond, 64<<10)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = ep.publish(context.Background(), someOffer)
			if err == nil {
				t.Fatal("publish succeeded")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), srv.URL+"/whip") {
				t.Errorf("error %q does not say %q at %s", err, c.want, srv.URL+"/whip")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

// TestRetriesWithBackoff: a publisher facing an endpoint that keeps failing tries
// again with doubling delays up to its cap, and says why in its status.
func TestRetriesWithBackoff(t *testing.T) {
	var mu sync.Mutex
	var posts []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != contentTypeSDP {
			t.Errorf("offer sent as %q", r.Header.Get("Content-Type"))
		}
		mu.Lock()
		posts = append(posts, time.Now())
		mu.Unlock()
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	p, err := New(Config{Endpoint: srv.URL + "/whip", Loopback: true, Interfaces: []string{"lo"},
		RetryInitial: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, &service.Health{}) }()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(posts) }
	wait.For(t, 20*time.Second, "six offers", func() bool { return count() >= 6 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	delays := []time.Duration{50, 100, 200, 400, 400}
	for i, d := range delays {
		gap := posts[i+1].Sub(posts[i])
		if gap < d*time.Millisecond {
			t.Errorf("offer %d came %s after the one before, want at least %s", i+2, gap, d*time.Millisecond)
		}
	}
	st := p.Status()
	if !strings.Contains(st.LastError, "HTTP 503: down for maintenance") || !strings.Contains(st.LastError, srv.URL) {
		t.Errorf("last error %q", st.LastError)
	}
	if st.State != StateStopped || st.NewSessions != 0 {
		t.Errorf("status %+v", st)
	}
}

// TestMutualTLSAndBearer: the box reaches the hub with the identity the hub's own
// authority issued (trust.Identity.ClientTLS), and a bearer token when configured;
// without the identity the hub does not see the box as a device.
func TestMutualTLSAndBearer(t *testing.T) {
	auth, err := trust.OpenAuthority(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "amb-7"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	leaf, err := auth.SignDevice("amb-7", csr)
	if err != nil {
		t.Fatal(err)
	}
	id := &trust.Identity{DeviceID: "amb-7", Leaf: leaf, HubCA: auth.Certificate(),
		Cert: tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}}

	seen := make(chan string, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		device, _, _ := trust.DeviceID(r.TLS)
		seen <- device + "|" + r.Header.Get("Authorization")
		http.Error(w, "seen", http.StatusForbidden)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the stranger's failed handshake is expected
	srv.TLS, err = auth.ServerTLS([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	defer srv.Close()

	ep, err := newEndpoint(srv.URL+"/whip", id.ClientTLS(), "tok", 5*time.Second, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ep.publish(context.Background(), someOffer)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusForbidden {
		t.Fatalf("publish with the identity: %v", err)
	}
	if got := <-seen; got != "amb-7|Bearer tok" {
		t.Errorf("hub saw %q, want device amb-7 with the bearer token", got)
	}

	// Trusting the hub's authority but without a certificate, the box is nobody.
	anon, _ := newEndpoint(srv.URL+"/whip", &tls.Config{RootCAs: id.ClientTLS().RootCAs}, "", 5*time.Second, 64<<10)
	if _, err := anon.publish(context.Background(), someOffer); !errors.As(err, &se) {
		t.Fatalf("publish without the identity: %v", err)
	}
	if got := <-seen; got != "|" {
		t.Errorf("hub saw %q from a box without identity", got)
	}
	// And a box that does not trust the server's authority does not talk to it.
	stranger, _ := newEndpoint(srv.URL+"/whip", &tls.Config{}, "", 5*time.Second, 64<<10)
	if _, err := stranger.publish(context.Background(), someOffer); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("publish to an unknown authority: %v", err)
	}
}

func TestRestartOutcomes(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&StatusError{Code: 404}, true},
		{&StatusError{Code: 405}, true},
		{&StatusError{Code: 412}, true},
		{&StatusError{Code: 501}, true},
		{&StatusError{Code: 503}, false},
		{&badRestartAnswer{errors.New("no ice-pwd")}, true},
		{errors.New("dial tcp: connect: network is unreachable"), false},
	}
	for _, c := range cases {
		if got := needsNewSession(c.err); got != c.want {
			t.Errorf("needsNewSession(%v) = %v", c.err, got)
		}
	}
}
