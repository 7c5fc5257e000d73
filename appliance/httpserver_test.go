package appliance

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"lifeline/internal/service"
)

// serveBounded runs handler behind boundRequests with short bounds on a loopback
// listener through httpService, as the box's and the hub's status servers run.
func serveBounded(t *testing.T, handler http.Handler, read, write time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		httpService("test-http", ln, boundRequests(handler, read, write), slog.New(slog.DiscardHandler)).Run(ctx, &service.Health{})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// TestBoundRequestsCutATrickledBody: a request body trickled a byte at a time (the
// attack on the hub sent 5 bytes every 75 s) fails the handler's read at the read
// bound and loses its connection.
func TestBoundRequestsCutATrickledBody(t *testing.T) {
	readErr := make(chan error, 1)
	addr := serveBounded(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}), 300*time.Millisecond, time.Second)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n")
	began := time.Now()
	closed := make(chan struct{})
	go func() {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c)
		close(closed)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			if took := time.Since(began); took > 3*time.Second {
				t.Fatalf("the trickled request held its connection %v", took)
			}
			if err := <-readErr; err == nil || !strings.Contains(err.Error(), "timeout") {
				t.Fatalf("the handler's read ended with %v; want a timeout", err)
			}
			return
		case <-tick.C:
			c.Write([]byte("x"))
		}
	}
}

// TestBoundRequestsCutASlowReader: a client that does not read its answer makes the
// handler's write fail at the write bound, instead of holding it for good.
func TestBoundRequestsCutASlowReader(t *testing.T) {
	writeErr := make(chan error, 1)
	addr := serveBounded(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 1<<20)
		for range 256 {
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}), time.Second, 500*time.Millisecond)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") // and never read
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("256 MiB went to a client that reads nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's write was still blocked after 10 s")
	}
}

// TestEveryServerHasTimeouts: the servers built with boundServer have all four.
func TestEveryServerHasTimeouts(t *testing.T) {
	srv := boundServer(&http.Server{})
	if srv.ReadHeaderTimeout != httpReadHeaderTimeout || srv.ReadTimeout != httpReadTimeout || srv.WriteTimeout != httpWriteTimeout || srv.IdleTimeout != httpIdleTimeout {
		t.Fatalf("timeouts %v %v %v %v", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	if srv := boundServer(&http.Server{WriteTimeout: time.Hour}); srv.WriteTimeout != time.Hour {
		t.Fatal("boundServer overrode a timeout that was set")
	}
}
