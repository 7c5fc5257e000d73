package edscreen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/internal/durable"
	"lifeline/internal/service"
	"lifeline/internal/wait"
	"lifeline/stream/camera"
	"lifeline/stream/sfu"
	"lifeline/stream/vitals"
	"lifeline/stream/whip"
	"lifeline/telemetry"
)

// testHub is the hub's half of the live pipeline, wired as the appliance would wire
// it: the SFU (WHIP ingest, WHEP fan-out), the vitals archive with its history API, and
// the ED screen, on one loopback HTTP server. Boxes authenticate with a bearer token
// naming their device, standing in for their mTLS identity.
type testHub struct {
	sfu     *sfu.SFU
	archive *vitals.Archive
	screen  *Screen
	srv     *httptest.Server

	// failBoxes makes the board's data source fail, as a hub whose registry is down.
	failBoxes atomic.Bool
	// signedOut makes the sign-in wrapper refuse the data with 401 and answer the
	// pages with a sign-in page, as after the idle timeout.
	signedOut atomic.Bool

	mu    sync.Mutex
	cards map[string]*PatientCard
	// dispatch is what dispatch says of boxes (ETA, mission), live or not: a box on
	// its way whose stream has not started is on the board too.
	dispatch map[string]BoxSummary
}

func quietLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testLog{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testLog writes to the test's log until the test ends: pion's goroutines may log a
// closing connection after that, which testing forbids.
type testLog struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func startHub(t *testing.T) *testHub {
	t.Helper()
	logw := &testLog{t: t}
	t.Cleanup(func() { logw.mu.Lock(); logw.done = true; logw.mu.Unlock() })
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := &testHub{cards: map[string]*PatientCard{}, dispatch: map[string]BoxSummary{}}
	store, err := durable.Open(filepath.Join(t.TempDir(), "hub.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h.archive, err = vitals.NewArchive(vitals.ArchiveConfig{
		History: vitals.NewBoltHistory(store, vitals.HistoryBounds{}), Log: log,
		SendAck: func(device string, ack []byte) { _ = h.sfu.SendToPublisher(device, vitals.LabelReliable, ack) },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.sfu, err = sfu.New(sfu.Config{
		Listen: "127.0.0.1:0", TCPListen: "off", Log: log, Registerer: prometheus.NewRegistry(),
		AuthorizePublisher: func(r *http.Request) (string, error) {
			if d, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer box:"); ok {
				return d, nil
			}
			return "", errors.New("no box identity")
		},
		AuthorizeViewer: func(r *http.Request, device string) (string, error) {
			// As the hub's sign-in will: a WHEP offer is a state-changing request.
			if r.Header.Get("X-CSRF-Token") != testCSRFToken {
				return "", errors.New("missing or wrong anti-CSRF token")
			}
			return "dr-test", nil
		},
		OnPublisherMessage: func(device, label string, data []byte) []byte {
			if label == vitals.LabelReliable || label == vitals.LabelWave {
				_, _ = h.archive.Receive(device, label, data)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.screen, err = New(Config{Boxes: h.boxes, Log: log, CSRFToken: func(*http.Request) string { return testCSRFToken }, Wrap: h.signIn})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = h.sfu.Service().Run(ctx, new(service.Health)) }()
	go func() { defer wg.Done(); _ = h.archive.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	wait.For(t, 5*time.Second, "the SFU to bind its media socket", func() bool { return h.sfu.Status().UDP != "" })

	mux := http.NewServeMux()
	mux.Handle("/whip", h.sfu.WHIP())
	mux.Handle("/whip/", h.sfu.WHIP())
	mux.Handle("/whep/", h.sfu.WHEP())
	mux.Handle("GET /api/v1/devices/{device}/vitals", h.archive.HistoryHandler())
	mux.Handle("/ed/", h.screen.Handler())
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

// signIn stands in for the hub's sign-in wrapper.
func (h *testHub) signIn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !h.signedOut.Load():
			next.ServeHTTP(w, r)
		case strings.Contains(r.URL.Path, "/api/"):
			http.Error(w, "sign in first", http.StatusUnauthorized)
		default:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, `<!doctype html><title>sign in</title><p id="signin">Sign in to Lifeline</p>`)
		}
	})
}

// setCard gives a box the crew's patient card.
func (h *testHub) setCard(device string, c *PatientCard) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cards[device] = c
}

// setDispatch records what dispatch says of a box.
func (h *testHub) setDispatch(b BoxSummary) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dispatch[b.Device] = b
}

// boxes is what the hub tells the board: every box publishing now or known to
// dispatch, with its card.
func (h *testHub) boxes(context.Context) ([]BoxSummary, error) {
	if h.failBoxes.Load() {
		return nil, errors.New("test: the hub's registry is down")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	byDevice := map[string]BoxSummary{}
	for d, b := range h.dispatch {
		byDevice[d] = b
	}
	for _, s := range h.sfu.Status().Sessions {
		b := byDevice[s.Device]
		b.Device, b.Live, b.LastContact = s.Device, true, time.Now()
		if b.Link == nil {
			b.Link = &Link{Quality: LinkGood}
		}
		byDevice[s.Device] = b
	}
	var out []BoxSummary
	for d, b := range byDevice {
		if c := h.cards[d]; c != nil {
			cp := *c
			cp.Suspected = append([]string(nil), c.Suspected...)
			b.Patient = &cp
		}
		out = append(out, b)
	}
	return out, nil
}

// testBox is the box's half: the embedded clip as its camera, a simulated monitor on
// the telemetry bus, the vitals outbox, and the WHIP publisher carrying them.
type testBox struct {
	pub     *whip.Publisher
	monitor *simMonitor
	// waveLinkDown loses every wave chunk the outbox sends while set, as a link
	// outage does; the outbox then marks the next chunk of every signal with gap.
	waveLinkDown atomic.Bool
	// reliableLinkDown fails every reliable send while set: the outbox keeps the
	// messages and sends them again when it clears.
	reliableLinkDown atomic.Bool
	// dropECGChunk loses the next chunk of ECG lead II in transit without the outbox
	// knowing, as the unordered channel may: no gap flag marks it.
	dropECGChunk atomic.Bool
}

var errLinkDown = errors.New("test: link down")

// testCSRFToken is the signed-in session's anti-CSRF token in these tests.
const testCSRFToken = "csrf-7f3a9c"

func startBox(t *testing.T, h *testHub, device string) *testBox {
	t.Helper()
	b := &testBox{}
	store, err := durable.Open(filepath.Join(t.TempDir(), "box.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	bus := telemetry.NewBus(nil)
	outbox, err := vitals.NewOutbox(vitals.OutboxConfig{Store: store, Bus: bus, Device: device, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	noRetransmits := uint16(0)
	b.pub, err = whip.New(whip.Config{
		Endpoint: h.srv.URL + "/whip", BearerToken: "box:" + device, Audio: camera.Opus, Loopback: true, Log: quietLog(t),
		DataChannels: []whip.DataChannel{
			{Label: vitals.LabelReliable, Ordered: true,
				OnOpen: func(send func([]byte) error) {
					outbox.OpenReliable(func(m []byte) error {
						if b.reliableLinkDown.Load() {
							return errLinkDown
						}
						return send(m)
					})
				},
				OnMessage: func(m []byte) { _ = outbox.HandleFromHub(m) }, OnClose: outbox.CloseReliable},
			{Label: vitals.LabelWave, MaxRetransmits: &noRetransmits, OnClose: outbox.CloseWave,
				OnOpen: func(send func([]byte) error) {
					outbox.OpenWave(func(m []byte) error {
						if b.waveLinkDown.Load() {
							return errLinkDown
						}
						if bytes.Contains(m, []byte(`"code":131330,`)) && b.dropECGChunk.CompareAndSwap(true, false) {
							return nil
						}
						return send(m)
					})
				}},
			{Label: sfu.ControlLabel, Ordered: true, OnMessage: func(m []byte) { _ = outbox.HandleFromHub(m) }},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.monitor = newSimMonitor(bus)
	clip := camera.NewClipSource()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	run(func() { _ = outbox.Run(ctx) })
	run(func() { _ = b.pub.Run(ctx, new(service.Health)) })
	run(func() { b.monitor.run(ctx) })
	run(func() {
		_ = clip.Run(ctx, func(f camera.Frame) {
			if f.Codec == camera.H264 {
				_ = b.pub.WriteVideo(f)
			} else {
				_ = b.pub.WriteAudio(f)
			}
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	wait.For(t, 15*time.Second, "the box's video and vitals at the hub", func() bool {
		for _, s := range h.sfu.Status().Sessions {
			if s.Device == device && len(s.Tracks) > 0 && s.Tracks[0].Packets > 0 {
				return true
			}
		}
		return false
	})
	return b
}
