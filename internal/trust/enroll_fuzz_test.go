package trust

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"lifeline/internal/audit/audittest"
	"lifeline/internal/hubstate/boltstate"
	"lifeline/internal/throttle"
)

// FuzzEnrollHandler posts arbitrary bodies to the enrolment handler behind its
// limits, as a stranger can. No code is issued, so every answer must be a refusal
// (400 or 403), and what one request allocates and how long it takes must stay
// bounded whatever the body (the handler reads at most 64 KiB of it).
func FuzzEnrollHandler(f *testing.F) {
	f.Add([]byte(`{"code":"AAAAAAAAAAAAAAAA","csr":""}`))
	f.Add([]byte(`{"code":"MZXW6YTBOJRGC4TB","csr":"-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"}`))
	dir := f.TempDir()
	auth, err := OpenAuthority(filepath.Join(dir, "ca"))
	if err != nil {
		f.Fatal(err)
	}
	store, err := boltstate.Open(filepath.Join(dir, "hub.db"), 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	reg := NewRegistry(store, auth)
	rec := &audittest.Recorder{}
	// Refusals never block here, so that every input reaches the handler.
	h := LimitedEnrollHandler(auth, reg, rec, EnrollLimits{Refusals: throttle.New(throttle.Policy{Free: 1 << 30})})
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, EnrollPath, bytes.NewReader(body))
		req.RemoteAddr = "192.0.2.7:4000"
		w := httptest.NewRecorder()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		began := time.Now()
		h.ServeHTTP(w, req)
		took := time.Since(began)
		runtime.ReadMemStats(&after)
		if w.Code != http.StatusBadRequest && w.Code != http.StatusForbidden {
			t.Fatalf("answer %d %q to %q; want a refusal", w.Code, w.Body, body)
		}
		if got, budget := after.TotalAlloc-before.TotalAlloc, uint64(1<<20+16*min(len(body), 64<<10)); got > budget {
			t.Fatalf("a %d-byte body allocated %d bytes, over %d", len(body), got, budget)
		}
		if took > 2*time.Second {
			t.Fatalf("a %d-byte body took %v", len(body), took)
		}
	})
}
