package sfu

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"lifeline/internal/wait"
)

// TestBadRequestsGetClearAnswers sends the hub what a broken or hostile client
// would, and checks each gets its own status and a message naming the problem,
// while a box that was already publishing keeps its session.
func TestBadRequestsGetClearAnswers(t *testing.T) {
	t.Parallel()
	h := startHub(t, Config{MaxSessions: 1, MaxViewers: 1, MaxBody: 8 << 10})
	box := publishBox(t, h, "box-good")
	wait.For(t, 10*time.Second, "the box's connection", func() bool { return box.pc.ConnectionState().String() == "connected" })
	dev := map[string]string{"X-Device": "box-other"}
	own := map[string]string{"X-Device": "box-good"}
	frag := "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyz\r\n"
	for _, c := range []struct {
		name, method, path, ctype, body string
		header                          map[string]string
		code                            int
		says                            string
	}{
		{"no device identity", "POST", "/whip", sdpType, "v=0", nil, 403, "not allowed to publish"},
		{"wrong content type", "POST", "/whip", "text/plain", "v=0", dev, 415, "application/sdp"},
		{"huge offer", "POST", "/whip", sdpType, strings.Repeat("a=x\r\n", 4000), dev, 413, "larger than 8192"},
		{"empty offer", "POST", "/whip", sdpType, "", dev, 400, "empty body"},
		{"hub full", "POST", "/whip", sdpType, box.pc.LocalDescription().SDP, dev, 503, "limit"},
		{"malformed offer", "POST", "/whip", sdpType, "this is not SDP", own, 400, "not a usable SDP offer"},
		{"unknown session patch", "PATCH", "/whip/0123", fragmentType, frag, own, 404, "no such WHIP session"},
		{"unknown session delete", "DELETE", "/whip/0123", "", "", own, 404, "no such WHIP session"},
		{"another box's session", "DELETE", box.location, "", "", dev, 404, "no such WHIP session"},
		{"patch wrong type", "PATCH", box.location, sdpType, frag, own, 415, "trickle-ice-sdpfrag"},
		{"patch without If-Match", "PATCH", box.location, fragmentType, frag, own, 428, "If-Match"},
		{"patch stale ETag", "PATCH", box.location, fragmentType, frag, map[string]string{"X-Device": "box-good", "If-Match": `"old"`}, 412, "ETag"},
		{"patch garbage", "PATCH", box.location, fragmentType, "a=ice-ufrag:\x00\x01\r\n", map[string]string{"X-Device": "box-good", "If-Match": box.etag}, 400, "trickle-ice-sdpfrag"},
		{"patch bad candidate", "PATCH", box.location, fragmentType, "a=candidate:nonsense\r\n", map[string]string{"X-Device": "box-good", "If-Match": box.etag}, 400, "candidate"},
		{"view a box not publishing", "POST", "/whep/box-absent", sdpType, "v=0", nil, 404, "not publishing"},
		{"view unknown session", "DELETE", "/whep/box-good/0123", "", "", nil, 404, "no such WHEP session"},
		{"GET the endpoint", "GET", "/whip", "", "", own, 405, ""},
	} {
		code, _, body := h.do(t, c.method, c.path, c.ctype, c.body, c.header)
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("%s: got %d %q, want %d saying %q", c.name, code, strings.TrimSpace(body), c.code, c.says)
		}
	}

	// The first viewer fits, the second is over MaxViewers.
	if v := watch(t, h, "box-good"); v.code != http.StatusCreated {
		t.Fatalf("first viewer: %d %s", v.code, v.body)
	}
	if v := watch(t, h, "box-good"); v.code != http.StatusServiceUnavailable || !strings.Contains(v.body, "limit") || v.retryAfter == "" {
		t.Errorf("second viewer: got %d %q (Retry-After %q), want 503 naming the limit, with Retry-After", v.code, v.body, v.retryAfter)
	}
	st := h.sfu.Status()
	if len(st.Sessions) != 1 || st.Sessions[0].Session != strings.TrimPrefix(box.location, "/whip/") || st.Sessions[0].State != "connected" {
		t.Errorf("the good box's session did not survive the bad requests: %+v", st.Sessions)
	}
}
