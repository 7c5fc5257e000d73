package appliance

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDeadLetterRetryCannotBeForgedCrossSite checks the guards of the retry before the
// forwarder runs: what a page of another site can make a browser send is refused
// before it reaches the forwarder, and what the box's own page and the CLI send is
// let through (here to the "not enrolled" answer of a box without a forwarder).
func TestDeadLetterRetryCannotBeForgedCrossSite(t *testing.T) {
	cfg := DefaultEdgeConfig()
	cfg.HTTP.Listen, cfg.DICOM.Listen = "127.0.0.1:0", "127.0.0.1:0"
	e, err := OpenEdge(cfg, t.TempDir(), "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	const path = DeadLettersPath + "/1.2.3.4/retry"
	for _, c := range []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"cross-site form post", map[string]string{"Content-Type": "application/x-www-form-urlencoded",
			"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"cross-site fetch claiming JSON", map[string]string{"Content-Type": "application/json",
			"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"old browser, other origin", map[string]string{"Content-Type": "application/json",
			"Origin": "https://evil.example"}, http.StatusForbidden},
		{"text/plain without browser headers", map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
		{"no content type", nil, http.StatusUnsupportedMediaType},
		{"the status page", map[string]string{"Content-Type": "application/json",
			"Origin": "http://127.0.0.1:8780", "Sec-Fetch-Site": "same-origin"}, http.StatusServiceUnavailable},
		{"the CLI", map[string]string{"Content-Type": "application/json"}, http.StatusServiceUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8780"+path, strings.NewReader("{}"))
			for k, v := range c.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			e.mux.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Fatalf("POST %s: %d %s, want %d", path, rec.Code, rec.Body, c.want)
			}
		})
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8780"+DeadLettersPath, nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not enrolled") {
		t.Fatalf("GET %s on a box not enrolled: %d %s", DeadLettersPath, rec.Code, rec.Body)
	}
}
