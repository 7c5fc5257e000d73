package sfu

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"lifeline/internal/service"
	"lifeline/internal/wait"
)

// hub is an SFU under test, served by an httptest server on loopback together with
// the browser harness page. Boxes name themselves in the X-Device header, as the
// appliance would take the name from the box's mTLS certificate.
type hub struct {
	sfu *SFU
	srv *httptest.Server

	mu     sync.Mutex
	events []Event
}

func startHub(t *testing.T, cfg Config) *hub {
	t.Helper()
	h := &hub{}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.TCPListen == "" {
		cfg.TCPListen = "127.0.0.1:0"
	}
	logs := &testWriter{t: t}
	t.Cleanup(logs.stop) // registered first, so it runs after everything else has stopped
	cfg.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	h.defaultHooks(&cfg)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.sfu = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Service().Run(ctx, new(service.Health)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sfu service: %v", err)
		}
	})
	wait.For(t, 5*time.Second, "the SFU to bind its media sockets", func() bool { return s.Status().UDP != "" })

	page, err := os.ReadFile("testdata/harness.html")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(s.cfg.WHIPPath, s.WHIP())
	mux.Handle(s.cfg.WHIPPath+"/", s.WHIP())
	mux.Handle(s.cfg.WHEPPath+"/", s.WHEP())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

// defaultHooks fills the hooks a test left unset: boxes name themselves in the
// X-Device header, every viewer may watch, and the hub records its events.
func (h *hub) defaultHooks(cfg *Config) {
	if cfg.AuthorizePublisher == nil {
		cfg.AuthorizePublisher = func(r *http.Request) (string, error) {
			if d := r.Header.Get("X-Device"); d != "" {
				return d, nil
			}
			return "", errors.New("no device certificate")
		}
	}
	if cfg.AuthorizeViewer == nil {
		cfg.AuthorizeViewer = func(r *http.Request, device string) (string, error) { return "dr-test@" + r.RemoteAddr, nil }
	}
	cfg.OnEvent = func(e Event) { h.mu.Lock(); h.events = append(h.events, e); h.mu.Unlock() }
}

// do sends one request to the hub and returns its status, headers and body.
func (h *hub) do(t *testing.T, method, path, contentType, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// openPage loads the harness page in a browser tab.
func (h *hub) openPage(t *testing.T, tab context.Context) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(h.srv.URL+"/")); err != nil {
		t.Fatalf("open harness page: %v", err)
	}
}

// testWriter sends log lines to the test's log until the test ends: pion's
// callbacks may still log a connection closing after that, which testing forbids.
type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// videoStats is what the harness page reads from getStats for the received video.
type videoStats struct {
	FramesDecoded            int     `json:"framesDecoded"`
	NackCount                int     `json:"nackCount"`
	PliCount                 int     `json:"pliCount"`
	PacketsLost              int     `json:"packetsLost"`
	FrameWidth               int     `json:"frameWidth"`
	JitterBufferDelay        float64 `json:"jitterBufferDelay"`
	JitterBufferEmittedCount int     `json:"jitterBufferEmittedCount"`
}

// audioStats is what the harness page reads from getStats for the received audio.
type audioStats struct {
	Codec                string `json:"codec"`
	PacketsReceived      int    `json:"packetsReceived"`
	TotalSamplesReceived int    `json:"totalSamplesReceived"`
}
