package appliance

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRebindingGuard checks that a box listening on loopback answers only requests
// that name loopback, as every local client does, and refuses a page whose own name was
// resolved to 127.0.0.1; a box exposed on the network answers any name.
func TestRebindingGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	loopback := rebindingGuard(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8780}, ok)
	exposed := rebindingGuard(&net.TCPAddr{IP: net.IPv4zero, Port: 8780}, ok)
	for _, c := range []struct {
		h    http.Handler
		host string
		want int
	}{
		{loopback, "127.0.0.1:8780", http.StatusNoContent},
		{loopback, "localhost:8780", http.StatusNoContent},
		{loopback, "LOCALHOST", http.StatusNoContent},
		{loopback, "[::1]:8780", http.StatusNoContent},
		{loopback, "127.0.0.2:8780", http.StatusNoContent},
		{loopback, "rebound.evil.example:8780", http.StatusMisdirectedRequest},
		{loopback, "192.168.1.20:8780", http.StatusMisdirectedRequest},
		{loopback, "", http.StatusMisdirectedRequest},
		{exposed, "box.clinic.example:8780", http.StatusNoContent},
	} {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/vitals", nil)
		req.Host = c.host
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("Host %q: %d, want %d", c.host, rec.Code, c.want)
		}
	}
}
