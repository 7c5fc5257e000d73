package transfer

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/hubstate/boltstate"
	"lifeline/internal/wait"
)

// listRoute is a box's route among hub addresses as the appliance keeps it: the
// current address until it is reported unreachable, then the next.
type listRoute struct {
	mu    sync.Mutex
	urls  []string
	cur   int
	moves int
}

func (r *listRoute) Current() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.urls[r.cur]
}

func (r *listRoute) Unreachable(u string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.urls[r.cur] == u {
		r.cur = (r.cur + 1) % len(r.urls)
		r.moves++
	}
}

// sharedHub is one of several hubs on one state and one archive directory, as hubs
// on one PostgreSQL database with a shared staging directory are.
type sharedHub struct {
	ingest   *Ingest
	server   *Server
	cancel   context.CancelFunc
	done     chan struct{}
	requests atomic.Int64
}

func (h *sharedHub) url() string { return "https://" + h.server.Addr() }

// crash cuts the hub off at once, as a SIGKILL would, and leaves the shared state
// to the others.
func (h *sharedHub) crash() {
	if h.cancel == nil {
		return
	}
	h.server.Close()
	h.cancel()
	<-h.done
	h.cancel = nil
	h.ingest.Close()
}

// startSharedHubs starts n hubs on one state and one archive directory; wrap, if not
// nil, stands in front of each hub's handler.
func startSharedHubs(t *testing.T, p *pki, n int, wrap func(http.Handler) http.Handler) []*sharedHub {
	t.Helper()
	dir := t.TempDir()
	state, err := boltstate.Open(filepath.Join(dir, "hub.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	var hubs []*sharedHub
	t.Cleanup(func() {
		for _, h := range hubs {
			h.crash()
		}
		state.Close()
	})
	for range n {
		h := &sharedHub{}
		cfg := IngestConfig{Authorize: p.reg.Authorize, RetryMin: 100 * time.Millisecond, RetryMax: time.Second}
		if h.ingest, err = NewIngest(cfg, state, filepath.Join(dir, "archive"), nil, nil, testLog(t), prometheus.NewRegistry()); err != nil {
			t.Fatal(err)
		}
		ingest := h.ingest.Handler()
		if wrap != nil {
			ingest = wrap(ingest)
		}
		counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.requests.Add(1)
			ingest.ServeHTTP(w, r)
		})
		if h.server, err = Listen("127.0.0.1:0", ServerConfig{TLS: p.server, Handler: counted, Log: testLog(t)}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel, h.done = cancel, make(chan struct{})
		go func() {
			defer close(h.done)
			var wg sync.WaitGroup
			wg.Go(func() { h.server.Serve(ctx) })
			wg.Go(func() { h.ingest.Run(ctx) })
			wg.Wait()
		}()
		hubs = append(hubs, h)
	}
	return hubs
}

// TestBoxMovesToTheNextHubWhenItsHubDies is issue 18's failover on the box's side:
// two hubs share their state and staging directory, the box sends a study to the
// first, which crashes mid-study. The box finds it unreachable over QUIC and TCP,
// moves its route to the second at once, resumes every upload from the offset that
// hub reports, and finishes there: every instance archived once, byte for byte, no
// upload restarted from byte 0, no byte appended twice.
func TestBoxMovesToTheNextHubWhenItsHubDies(t *testing.T) {
	p := newPKI(t)
	hubs := startSharedHubs(t, p, 2, nil)
	a, b := hubs[0], hubs[1]
	route := &listRoute{urls: []string{a.url(), b.url()}}
	// A bandwidth cap keeps the study on the wire long enough to crash the hub
	// mid-way, with uploads cut in the middle of their instances.
	box := newBox(t, p.enroll(t, "AMB-1801"), ForwarderConfig{Hub: route, ChunkSize: 64 << 10, Parallel: 4,
		BandwidthCap: 40_000_000, NoCompression: true, RetryMin: 100 * time.Millisecond, RetryMax: time.Second,
		IdleTimeout: 3 * time.Second})
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(1801), Instances: 24, Rows: 512, Columns: 512, Seed: 1801}, "CT1")
	total := sumSizes(insts)
	box.start()

	wait.For(t, time.Minute, "a third of the study on hub A", func() bool { return a.ingest.bytesReceived.Load() > total/3 })
	a.crash()
	crashed := time.Now()
	onA := a.ingest.bytesReceived.Load()
	wait.For(t, 30*time.Second, "the box's route to move to hub B", func() bool { return route.Current() == b.url() })
	moved := time.Since(crashed)
	wait.For(t, 2*time.Minute, "study acknowledged", func() bool { return box.queueLen() == 0 })
	t.Logf("hub A took %d of %d bytes and crashed; the route moved to B %v later; B took %d bytes in %d requests",
		onA, total, moved.Round(10*time.Millisecond), b.ingest.bytesReceived.Load(), b.requests.Load())

	if onA >= total {
		t.Fatal("hub A had the whole study before it crashed; nothing was tested")
	}
	for _, in := range insts {
		rec, err := b.ingest.Instance(in.SOPInstanceUID)
		if err != nil {
			t.Fatalf("instance %s: %v", in.SOPInstanceUID, err)
		}
		got, err := pacstest.Describe(rec.Path)
		if err != nil || got.SHA256 != in.SHA256 || rec.SHA256 != in.SHA256 {
			t.Fatalf("instance %s: archived %+v (%v), index %s, sent %s", in.SOPInstanceUID, got, err, rec.SHA256, in.SHA256)
		}
	}
	if d := a.ingest.duplicates.Load() + b.ingest.duplicates.Load(); d != 0 {
		t.Fatalf("%d instances archived twice", d)
	}
	if got := onA + b.ingest.bytesReceived.Load(); got != total {
		t.Fatalf("the hubs appended %d bytes for %d bytes of instances", got, total)
	}
	if st := box.fwd.Status(); st.RestartsFromZero != 0 || st.Hub != b.url() {
		t.Fatalf("box status after the move: %d restarts from byte 0, hub %s (want %s)", st.RestartsFromZero, st.Hub, b.url())
	}
	if route.moves != 1 {
		t.Fatalf("the route moved %d times, want once", route.moves)
	}
}
