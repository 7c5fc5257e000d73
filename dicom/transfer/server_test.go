package transfer

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/wait"
)

// bodyRead is what the handler saw while reading one request body.
type bodyRead struct {
	n       int
	err     error
	elapsed time.Duration
}

// startReadingServer runs the hub's server with a handler that reads whole bodies
// and reports how each read ended.
func startReadingServer(t *testing.T, p *pki, readTimeout time.Duration) (*Server, <-chan bodyRead) {
	t.Helper()
	reads := make(chan bodyRead, 8)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if r.URL.Path == "/long" {
			if err := http.NewResponseController(w).SetReadDeadline(time.Time{}); err != nil {
				t.Errorf("%s: lift the read bound: %v", r.Proto, err)
			}
		}
		body, err := io.ReadAll(r.Body)
		reads <- bodyRead{n: len(body), err: err, elapsed: time.Since(start)}
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%d", len(body))
	})
	srv, err := Listen("127.0.0.1:0", ServerConfig{TLS: p.server, Handler: handler, RequestReadTimeout: readTimeout, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, reads
}

// trickle is a request body that sends one byte every interval until it is closed,
// or, when count > 0, until it has sent count bytes.
func trickle(interval time.Duration, count int) (io.ReadCloser, func()) {
	pr, pw := io.Pipe()
	stop := make(chan struct{})
	var once sync.Once
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for sent := 0; count <= 0 || sent < count; sent++ {
			select {
			case <-stop:
				pw.Close()
				return
			case <-t.C:
				if _, err := pw.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
		pw.Close()
	}()
	return pr, func() { once.Do(func() { close(stop) }) }
}

// TestTrickledBodyIsCutOff sends a body one byte at a time over each transport the
// hub serves: the hub stops reading it at its read timeout instead of holding the
// stream (and, over TCP, the connection) for as long as the client likes.
func TestTrickledBodyIsCutOff(t *testing.T) {
	p := newPKI(t)
	const readTimeout = 700 * time.Millisecond
	srv, reads := startReadingServer(t, p, readTimeout)
	tlsConf := &tls.Config{RootCAs: p.auth.Pool(), ServerName: "127.0.0.1"}
	for _, tc := range []struct {
		name      string
		transport http.RoundTripper
	}{
		{"HTTP/1.1", &http.Transport{TLSClientConfig: tlsConf.Clone()}},
		{"HTTP/2", &http.Transport{TLSClientConfig: tlsConf.Clone(), ForceAttemptHTTP2: true}},
		{"HTTP/3", &http3.Transport{TLSClientConfig: tlsConf.Clone()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, stop := trickle(50*time.Millisecond, 0)
			defer stop()
			client := &http.Client{Transport: tc.transport, Timeout: 30 * time.Second}
			go func() {
				resp, err := client.Post("https://"+srv.Addr()+"/upload", "application/octet-stream", body)
				if err == nil {
					resp.Body.Close()
				}
			}()
			var got bodyRead
			select {
			case got = <-reads:
			case <-time.After(20 * time.Second):
				t.Fatal("the hub was still reading a trickled body after 20 s")
			}
			if got.err == nil {
				t.Fatalf("the hub read a trickled body to its end (%d bytes in %v)", got.n, got.elapsed)
			}
			if got.elapsed < readTimeout/2 {
				t.Fatalf("read cut after %v, before the %v timeout could have passed: %v", got.elapsed, readTimeout, got.err)
			}
			t.Logf("%s: cut after %v and %d bytes: %v", tc.name, got.elapsed.Round(time.Millisecond), got.n, got.err)
		})
	}
}

// TestHandlerCanLiftTheReadBound reads a body that takes longer than the read
// timeout on a path whose handler lifts the bound, as a WebSocket would.
func TestHandlerCanLiftTheReadBound(t *testing.T) {
	p := newPKI(t)
	const readTimeout = 300 * time.Millisecond
	srv, reads := startReadingServer(t, p, readTimeout)
	tlsConf := &tls.Config{RootCAs: p.auth.Pool(), ServerName: "127.0.0.1"}
	for _, rt := range []http.RoundTripper{
		&http.Transport{TLSClientConfig: tlsConf.Clone()},
		&http.Transport{TLSClientConfig: tlsConf.Clone(), ForceAttemptHTTP2: true},
		&http3.Transport{TLSClientConfig: tlsConf.Clone()},
	} {
		body, stop := trickle(100*time.Millisecond, 8)
		client := &http.Client{Transport: rt, Timeout: 30 * time.Second}
		resp, err := client.Post("https://"+srv.Addr()+"/long", "application/octet-stream", body)
		stop()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := <-reads
		if got.err != nil || got.n != 8 || got.elapsed < readTimeout {
			t.Fatalf("%s: read %d bytes in %v: %v; want all 8 over more than %v", resp.Proto, got.n, got.elapsed, got.err, readTimeout)
		}
	}
}

// TestServerAdvertisesHTTP3OnItsPort checks that the TCP side points browsers to the
// HTTP/3 side on the same port, and that both answer.
func TestServerAdvertisesHTTP3OnItsPort(t *testing.T) {
	p := newPKI(t)
	srv, reads := startReadingServer(t, p, 0)
	tlsConf := &tls.Config{RootCAs: p.auth.Pool(), ServerName: "127.0.0.1"}
	_, port, _ := net.SplitHostPort(srv.Addr())
	for _, rt := range []http.RoundTripper{&http.Transport{TLSClientConfig: tlsConf.Clone()}, &http3.Transport{TLSClientConfig: tlsConf.Clone()}} {
		client := &http.Client{Transport: rt, Timeout: 10 * time.Second}
		resp, err := client.Post("https://"+srv.Addr()+"/upload", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(answer) != "5" {
			t.Fatalf("%s: %s %q", resp.Proto, resp.Status, answer)
		}
		if got := <-reads; got.err != nil || got.n != 5 {
			t.Fatalf("%s: handler read %d bytes: %v", resp.Proto, got.n, got.err)
		}
		if resp.ProtoMajor < 3 && !strings.Contains(resp.Header.Get("Alt-Svc"), `h3=":`+port+`"`) {
			t.Fatalf("%s answer advertises Alt-Svc %q, want HTTP/3 on port %s", resp.Proto, resp.Header.Get("Alt-Svc"), port)
		}
	}
}

// TestLongUploadOutlivesReadTimeout forwards a study that takes several times the
// hub's read timeout to upload: each chunk is its own request, so the bound on a
// trickled body never cuts a long upload.
func TestLongUploadOutlivesReadTimeout(t *testing.T) {
	p := newPKI(t)
	const readTimeout = 800 * time.Millisecond
	hub := startHubWith(t, p, func(h *testHub) { h.readTimeout = readTimeout })
	// 4 instances of ~2 MiB at 24 Mbit/s: about 3 s, each 64 KiB chunk ~20 ms.
	cfg := ForwarderConfig{HubURL: hub.url(), ChunkSize: 64 << 10, BandwidthCap: 24_000_000, NoCompression: true}
	box := newBox(t, p.enroll(t, "AMB-0042"), cfg)
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(42), Instances: 4, Rows: 1024, Columns: 1024, Seed: 42}, "CT1")
	start := time.Now()
	box.start()
	wait.For(t, 60*time.Second, "study acknowledged", func() bool { return box.queueLen() == 0 })
	took := time.Since(start)
	checkArchived(t, hub, insts)
	if took < 2*readTimeout {
		t.Fatalf("the upload took %v, too short to show anything against a %v read timeout", took, readTimeout)
	}
	if fs := box.fwd.Status(); fs.ResentBytes != 0 || fs.RestartsFromZero != 0 {
		t.Fatalf("a %v upload under a %v read timeout re-sent %d bytes, %d restarts", took, readTimeout, fs.ResentBytes, fs.RestartsFromZero)
	}
	t.Logf("uploaded %d bytes in %v under a %v read timeout", sumSizes(insts), took.Round(time.Millisecond), readTimeout)
}
