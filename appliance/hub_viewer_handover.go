package appliance

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"lifeline/internal/signin"
)

// Watching a box that publishes to another hub of the shared state
// (docs/multi-hub.md, "Live sessions"). The viewer is redirected to the hub that
// holds the session, and the media flows from there; a relay through this hub would
// add a hub-to-hub hop to every frame, for the whole view, where a redirect costs
// one sign-in at the start.
//
//   - A signed-in doctor's browser cannot follow a redirect to another origin with
//     its session: the cookie is the origin's own. So this hub hands the doctor over:
//     it mints a one-time sign-in for the same account (the accounts and their links
//     are in the shared state), audits it, and the browser takes it to the other hub,
//     which signs it in and opens the box's view (handoverPath, the ED view).
//   - A WHEP player with a viewer token is answered 307 with the other hub's WHEP
//     URL (whepElsewhere): the token verifies at every hub, as they share its key.

// handoverPath is where the ED view asks for a hand-over: POST handoverPath{device}.
const handoverPath = "/api/v1/handover/"

// handover mints a one-time sign-in at the hub that holds device's live session, for
// the signed-in viewer's own account, and answers where to take it:
// {"hub": name, "url": that hub's sign-in page with the token, "expires": time}.
func (h *Hub) handover(w http.ResponseWriter, r *http.Request) {
	v, _ := signin.ViewerFrom(r.Context())
	device := r.PathValue("device")
	l, ok := h.liveElsewhere(r.Context(), device)
	switch {
	case !ok:
		writeJSON(w, http.StatusConflict, map[string]string{"error": device + " does not publish its live stream to another hub now: watch it here"})
		return
	case l.ViewerURL == "":
		writeJSON(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("%s publishes to hub %s, which does not say where its viewers connect: sign in there", device, l.Hub)})
		return
	}
	tok, err := h.gate.IssueHandover(r.Context(), v, l.Hub, map[string]any{"device": device, "to_url": l.ViewerURL})
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, signin.ErrNotAudited) {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	view := edPrefix + "/box/" + url.PathEscape(device)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"hub":     l.Hub,
		"url":     l.ViewerURL + signin.LinkPagePath + "?next=" + url.QueryEscape(view) + "#" + tok.Token,
		"expires": tok.Expires,
	})
}

// whepElsewhere answers a viewer token's WHEP offer for a box that publishes to
// another hub with 307 and that hub's WHEP URL (RFC 9725 lets a WHEP server redirect
// its clients). The token is checked first, so that only a holder learns where a box
// is; every other request, and a box without another hub's address, goes on to the
// SFU, whose authorizeViewer refuses or admits it.
func (h *Hub) whepElsewhere(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bearer, isBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		device, isOffer := strings.CutPrefix(r.URL.Path, hubWHEPPath+"/")
		if !isBearer || r.Method != http.MethodPost || !isOffer || checkDeviceName(device) != nil {
			next.ServeHTTP(w, r)
			return
		}
		l, ok := h.liveElsewhere(r.Context(), device)
		if !ok || l.ViewerURL == "" {
			next.ServeHTTP(w, r)
			return
		}
		claim, err := h.tokens.verify(bearer, device, time.Now())
		if err != nil {
			next.ServeHTTP(w, r) // refused and audited there
			return
		}
		to := l.ViewerURL + hubWHEPPath + "/" + url.PathEscape(device)
		h.audit.Audit("stream.view.redirected", map[string]any{"device": device, "viewer": "token:" + claim.Subject, "token": claim.ID, "to": to, "remote": r.RemoteAddr})
		w.Header().Set("Location", to)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, fmt.Sprintf("%s publishes its live stream to hub %s, not to this one: watch it at %s", device, l.Hub, to), http.StatusTemporaryRedirect)
	})
}

// checkDeviceName refuses what cannot be a device in a WHEP offer's path: the SFU's
// session paths (/whep/{device}/{session}) and the empty name.
func checkDeviceName(device string) error {
	if device == "" || strings.Contains(device, "/") {
		return errors.New("not a device")
	}
	return nil
}

// atURL says where another hub's viewers connect, for a refusal's message; nothing
// when the hub did not say.
func atURL(viewerURL string) string {
	if viewerURL == "" {
		return ""
	}
	return ": " + viewerURL
}
