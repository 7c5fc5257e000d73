package whip

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"lifeline/internal/peers"
)

// receiverPage is the WHIP endpoint's media stack: Chromium answers each session's
// offer, counts what it decodes and keeps the data channel messages it receives.
const receiverPage = `<!doctype html><title>whip receiver</title><script>
window.sessions = {};
function gathered(pc) {
  return new Promise(resolve => {
    const t = setTimeout(resolve, 3000);
    pc.addEventListener('icecandidate', e => { if (!e.candidate) { clearTimeout(t); resolve(); } });
  });
}
async function answer(id, offer) {
  const pc = new RTCPeerConnection();
  const s = {pc, channels: {}, messages: {}};
  window.sessions[id] = s;
  pc.ondatachannel = e => {
    const dc = e.channel;
    s.channels[dc.label] = dc;
    s.messages[dc.label] = [];
    dc.binaryType = 'arraybuffer';
    dc.onmessage = m => s.messages[dc.label].push(typeof m.data === 'string' ? m.data : new TextDecoder().decode(m.data));
  };
  await pc.setRemoteDescription({type: 'offer', sdp: offer});
  const done = gathered(pc);
  await pc.setLocalDescription(await pc.createAnswer());
  await done;
  return pc.localDescription.sdp;
}
async function restart(id, offer) {
  const pc = window.sessions[id].pc;
  await pc.setRemoteDescription({type: 'offer', sdp: offer});
  const done = gathered(pc);
  await pc.setLocalDescription(await pc.createAnswer());
  await done;
  return pc.localDescription.sdp;
}
async function received(id) {
  const s = window.sessions[id];
  if (!s) return null;
  const out = {framesDecoded: 0, audioPackets: 0, width: 0, ice: s.pc.iceConnectionState, messages: s.messages};
  (await s.pc.getStats()).forEach(r => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      out.framesDecoded = r.framesDecoded || 0; out.width = r.frameWidth || 0;
      out.nacks = r.nackCount || 0; out.plis = r.pliCount || 0; out.lost = r.packetsLost || 0;
    }
    if (r.type === 'inbound-rtp' && r.kind === 'audio') { out.audioPackets = r.packetsReceived || 0; out.audioCodecId = r.codecId; }
  });
  const stats = await s.pc.getStats();
  if (out.audioCodecId && stats.get(out.audioCodecId)) out.audioCodec = stats.get(out.audioCodecId).mimeType;
  return out;
}
function sendControl(id, text) {
  const dc = window.sessions[id].channels['control'];
  if (!dc || dc.readyState !== 'open') return false;
  dc.send(text);
  return true;
}
</script>`

// received is what the page reports for one session.
type received struct {
	FramesDecoded int                 `json:"framesDecoded"`
	AudioPackets  int                 `json:"audioPackets"`
	AudioCodec    string              `json:"audioCodec"`
	Width         int                 `json:"width"`
	NACKs         int                 `json:"nacks"`
	PLIs          int                 `json:"plis"`
	Lost          int                 `json:"lost"`
	ICE           string              `json:"ice"`
	Messages      map[string][]string `json:"messages"`
}

// chromiumEndpoint is a WHIP endpoint (RFC 9725) written for the tests, with headless
// Chromium as its media stack: the box's publisher is tested against a browser's
// WebRTC, not only against pion.
type chromiumEndpoint struct {
	t     *testing.T
	tab   context.Context
	srv   *httptest.Server
	relay *udpRelay // when set, media crosses it and the test can cut the link
	stun  *stunServer
	token string // when set, requests must carry it as a bearer token

	mu          sync.Mutex
	posts       int
	patches     int
	deletes     []string
	sessions    map[string]*endpointSession
	lastID      string
	patchStatus int // when set, PATCH answers this status (an endpoint without ICE restart)
	patchHang   int // the next patchHang PATCHes get no answer: the box's request times out
	patchedAt   []time.Time
	answers     []string // every answer given, for the negotiated codecs
}

type endpointSession struct {
	offer string // the offer Chromium holds, rewritten by each restart
	etag  int
}

func newChromiumEndpoint(t *testing.T, relay *udpRelay, token string) *chromiumEndpoint {
	e := &chromiumEndpoint{t: t, relay: relay, token: token, sessions: map[string]*endpointSession{}}
	e.tab = peers.Browser(t, peers.BrowserOptions{})
	e.stun = newSTUNServer(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, receiverPage)
	})
	mux.HandleFunc("POST /whip", e.post)
	mux.HandleFunc("PATCH /whip/{id}", e.patch)
	mux.HandleFunc("DELETE /whip/{id}", e.delete)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	if err := chromedp.Do(e.tab, chromedp.Navigate(e.srv.URL+"/")); err != nil {
		t.Fatalf("open the receiver page: %v", err)
	}
	return e
}

func (e *chromiumEndpoint) url() string { return e.srv.URL + "/whip" }

func (e *chromiumEndpoint) authorised(w http.ResponseWriter, r *http.Request) bool {
	if e.token != "" && r.Header.Get("Authorization") != "Bearer "+e.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return false
	}
	return true
}

func (e *chromiumEndpoint) post(w http.ResponseWriter, r *http.Request) {
	if !e.authorised(w, r) {
		return
	}
	if r.Header.Get("Content-Type") != contentTypeSDP {
		http.Error(w, "want application/sdp", http.StatusUnsupportedMediaType)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	offer := string(body)
	if e.relay != nil {
		offer = e.relay.throughBrowserSide(offer)
	}
	e.mu.Lock()
	e.posts++
	id := strconv.Itoa(e.posts)
	e.lastID = id
	e.mu.Unlock()
	answer, err := chromedp.Run(e.tab, chromedp.Evaluate[string](fmt.Sprintf("answer(%q, %s)", id, jsString(offer)), chromedp.EvalAwaitPromise))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	e.mu.Lock()
	e.sessions[id] = &endpointSession{offer: offer, etag: 1}
	e.answers = append(e.answers, answer)
	e.mu.Unlock()
	if e.relay != nil {
		answer = e.relay.throughBoxSide(answer)
	}
	w.Header().Set("Content-Type", contentTypeSDP)
	w.Header().Set("Location", "/whip/"+id)
	w.Header().Set("ETag", `"1"`)
	w.Header().Add("Link", "<"+e.stun.url()+`>; rel="ice-server"`)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, answer)
}

// patch restarts ICE as RFC 9725 §4.3 says: the fragment's new credentials and
// candidates go into the offer Chromium holds, Chromium answers with its own, and
// those go back in a fragment with a new ETag.
func (e *chromiumEndpoint) patch(w http.ResponseWriter, r *http.Request) {
	if !e.authorised(w, r) {
		return
	}
	id := r.PathValue("id")
	e.mu.Lock()
	e.patches++
	e.patchedAt = append(e.patchedAt, time.Now())
	status := e.patchStatus
	hang := e.patchHang > 0
	if hang {
		e.patchHang--
	}
	s := e.sessions[id]
	e.mu.Unlock()
	switch {
	case hang:
		// Lost on the way, as on a link that just dropped. With the body read, the
		// server notices the box giving up on the connection, and the handler ends.
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		return
	case status != 0:
		http.Error(w, "no ICE restart here", status)
		return
	case s == nil:
		http.Error(w, "no such session", http.StatusNotFound)
		return
	case r.Header.Get("Content-Type") != contentTypeSDPFrag:
		http.Error(w, "want "+contentTypeSDPFrag, http.StatusUnsupportedMediaType)
		return
	case r.Header.Get("If-Match") != `"`+strconv.Itoa(s.etag)+`"`:
		http.Error(w, "stale ETag", http.StatusPreconditionFailed)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	frag := string(body)
	if e.relay != nil {
		frag = e.relay.throughBrowserSide(frag)
	}
	params, err := readICEParams(frag)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	offer := withRemoteICE(s.offer, params)
	answer, err := chromedp.Run(e.tab, chromedp.Evaluate[string](fmt.Sprintf("restart(%q, %s)", id, jsString(offer)), chromedp.EvalAwaitPromise))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if e.relay != nil {
		answer = e.relay.throughBoxSide(answer)
	}
	mine, err := readICEParams(answer)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	e.mu.Lock()
	s.offer = offer
	s.etag++
	etag := s.etag
	e.mu.Unlock()
	w.Header().Set("Content-Type", contentTypeSDPFrag)
	w.Header().Set("ETag", `"`+strconv.Itoa(etag)+`"`)
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, answerFragment(mine))
}

// answerFragment is the endpoint's side of an ICE restart: its new credentials and
// candidates.
func answerFragment(p iceParams) string {
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", p.ufrag, p.pwd)
	for _, c := range p.candidates {
		fmt.Fprintf(&b, "a=%s\r\n", c)
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String()
}

func (e *chromiumEndpoint) delete(w http.ResponseWriter, r *http.Request) {
	if !e.authorised(w, r) {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	id := r.PathValue("id")
	e.deletes = append(e.deletes, id)
	if _, ok := e.sessions[id]; !ok {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	delete(e.sessions, id)
	w.WriteHeader(http.StatusOK)
}

func (e *chromiumEndpoint) counts() (posts, patches int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.posts, e.patches
}

// received reads what the page holds for session id; nil before the session exists.
func (e *chromiumEndpoint) received(id string) *received {
	raw, err := chromedp.Run(e.tab, chromedp.Evaluate[[]byte](fmt.Sprintf("received(%q)", id), chromedp.EvalAwaitPromise))
	if err != nil {
		e.t.Fatalf("read the receiver page: %v", err)
	}
	if string(raw) == "null" {
		return nil
	}
	var r received
	if err := json.Unmarshal(raw, &r); err != nil {
		e.t.Fatalf("receiver page said %s: %v", raw, err)
	}
	return &r
}

func (e *chromiumEndpoint) framesDecoded(id string) int {
	if r := e.received(id); r != nil {
		return r.FramesDecoded
	}
	return 0
}

func (e *chromiumEndpoint) sendControl(id, text string) bool {
	ok, err := chromedp.Run(e.tab, chromedp.Evaluate[bool](fmt.Sprintf("sendControl(%q, %s)", id, jsString(text))))
	if err != nil {
		e.t.Fatalf("send on control: %v", err)
	}
	return ok
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// loopbackUDP is a 127.0.0.1 UDP socket on a free port.
func loopbackUDP(t *testing.T) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
