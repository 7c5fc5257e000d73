package transfer

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/dicom/pacs"
	"lifeline/dicom/pacs/pacstest"
	"lifeline/dicom/spool"
	"lifeline/internal/audit/audittest"
	"lifeline/internal/durable"
	"lifeline/internal/hubstate/boltstate"
	"lifeline/internal/trust"
)

func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("TRANSFER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// recordedReleases is the spool side of the Releaser contract, recording order.
type recordedReleases struct {
	mu   sync.Mutex
	sops []string
}

func (r *recordedReleases) MarkForwarded(sop string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sops = append(r.sops, sop)
	return nil
}

func (r *recordedReleases) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.sops...)
}

// pki is the hub's real trust chain: an authority, a device registry, and the TLS
// configurations the hub and enrolled boxes use.
type pki struct {
	auth   *trust.Authority
	reg    *trust.Registry
	server *tls.Config
	url    string // enrolment endpoint
	// dir holds the authority (ca) and the device registry (trust.db); release
	// hands both over to another process.
	dir     string
	release func()
}

func newPKI(t *testing.T, hosts ...string) *pki {
	t.Helper()
	hosts = append(hosts, "127.0.0.1")
	dir := t.TempDir()
	auth, err := trust.OpenAuthority(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := boltstate.Open(filepath.Join(dir, "trust.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	p := &pki{auth: auth, reg: trust.NewRegistry(store, auth), dir: dir}
	if p.server, err = auth.ServerTLS(hosts); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(trust.EnrollPath, trust.EnrollHandler(auth, p.reg, &audittest.Recorder{}))
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = p.server
	srv.StartTLS()
	p.release = func() { once.Do(func() { srv.Close(); store.Close() }) }
	t.Cleanup(p.release)
	p.url = srv.URL
	return p
}

// enroll gives a box an identity through the real enrolment protocol.
func (p *pki) enroll(t *testing.T, device string) *tls.Config {
	t.Helper()
	return p.enrollInto(t, device, t.TempDir()).ClientTLS()
}

// enrollInto stores the box's identity in dir, as `lifeline edge enroll` does.
func (p *pki) enrollInto(t *testing.T, device, dir string) *trust.Identity {
	t.Helper()
	code, err := p.reg.NewCode(context.Background(), device, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := trust.Enroll(context.Background(), p.url, code, dir)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testHub is a hub's transfer side that a test can stop and start again on the same
// address and data, as a crash and restart would.
type testHub struct {
	t       *testing.T
	pki     *pki
	dir     string
	addr    string
	deliver pacs.Deliverer
	audit   *audittest.Recorder
	cfg     IngestConfig
	// readTimeout is the server's RequestReadTimeout; zero: the default.
	readTimeout time.Duration

	state  *boltstate.Store
	ingest *Ingest
	// appended counts chunk bytes appended by earlier runs of the hub.
	appended int64
	server   *Server
	cancel   context.CancelFunc
	done     chan struct{}
	// in runs fn where the hub's sockets must live (a network namespace); nil: here.
	in func(fn func() error) error
	// duplicates counts instances uploaded again by earlier runs of the hub.
	duplicates int64
	// requests counts the requests the hub's handler was given, over every run.
	requests atomic.Int64
}

func startHub(t *testing.T, p *pki, deliver pacs.Deliverer) *testHub {
	return startHubWith(t, p, func(h *testHub) { h.deliver = deliver })
}

// startHubIn starts the hub with its socket made by in (see testHub.in) on addr.
func startHubIn(t *testing.T, p *pki, deliver pacs.Deliverer, in func(func() error) error, addr string) *testHub {
	return startHubWith(t, p, func(h *testHub) { h.deliver, h.in, h.addr = deliver, in, addr })
}

// startHubWith starts a hub on loopback after adjust has changed its settings.
func startHubWith(t *testing.T, p *pki, adjust func(h *testHub)) *testHub {
	h := &testHub{t: t, pki: p, dir: t.TempDir(), addr: "127.0.0.1:0", audit: &audittest.Recorder{},
		cfg: IngestConfig{Authorize: p.reg.Authorize, RetryMin: 100 * time.Millisecond, RetryMax: time.Second}}
	adjust(h)
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *testHub) start() {
	t := h.t
	t.Helper()
	var err error
	if h.state, err = boltstate.Open(filepath.Join(h.dir, "hub.db"), 0); err != nil {
		t.Fatal(err)
	}
	if h.ingest, err = NewIngest(h.cfg, h.state, filepath.Join(h.dir, "archive"), h.deliver, h.audit, testLog(t), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	listen := func() (err error) {
		ingest := h.ingest.Handler()
		counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.requests.Add(1)
			ingest.ServeHTTP(w, r)
		})
		h.server, err = Listen(h.addr, ServerConfig{TLS: h.pki.server, Handler: counted,
			RequestReadTimeout: h.readTimeout, Log: testLog(t)})
		return err
	}
	if h.in != nil {
		err = h.in(listen)
	} else {
		err = listen()
	}
	if err != nil {
		t.Fatal(err)
	}
	h.addr = h.server.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		var wg sync.WaitGroup
		wg.Go(func() { h.server.Serve(ctx) })
		wg.Go(func() { h.ingest.Run(ctx) })
		wg.Wait()
	}()
}

// stop cuts the hub off at once: connections drop, the store closes.
func (h *testHub) stop() {
	if h.cancel == nil {
		return
	}
	h.server.Close()
	h.cancel()
	<-h.done
	h.cancel = nil
	h.appended += h.ingest.bytesReceived.Load()
	h.duplicates += h.ingest.duplicates.Load()
	h.ingest.Close()
	h.state.Close()
}

// appendedTotal counts chunk bytes appended over every run of the hub.
func (h *testHub) appendedTotal() int64 {
	if h.cancel == nil {
		return h.appended
	}
	return h.appended + h.ingest.bytesReceived.Load()
}

func (h *testHub) url() string { return "https://" + h.addr }

// testBox is a box's durable store with its ready queue and a forwarder on it.
type testBox struct {
	t   *testing.T
	dir string
	tls *tls.Config
	cfg ForwarderConfig
	rel *recordedReleases
	// spool, when set, is the box's real spool: the forwarder releases into it and
	// reads its pending instances, instead of rel.
	spool   Releaser
	store   *durable.Store
	fwd     *Forwarder
	cancel  context.CancelFunc
	done    chan struct{}
	corrupt func(sop string, offset int64, body []byte)
}

func newBox(t *testing.T, tlsConf *tls.Config, cfg ForwarderConfig) *testBox {
	b := &testBox{t: t, dir: t.TempDir(), tls: tlsConf, cfg: cfg, rel: &recordedReleases{}}
	var err error
	if b.store, err = durable.Open(filepath.Join(b.dir, "box.db"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.stop()
		b.store.Close()
	})
	return b
}

func (b *testBox) start() {
	b.t.Helper()
	var err error
	var rel Releaser = b.rel
	if b.spool != nil {
		rel = b.spool
	}
	if b.fwd, err = NewForwarder(b.cfg, b.store, rel, b.tls, testLog(b.t), prometheus.NewRegistry()); err != nil {
		b.t.Fatal(err)
	}
	b.fwd.client.corrupt = b.corrupt
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		b.fwd.Run(ctx)
	}()
}

func (b *testBox) stop() {
	if b.cancel == nil {
		return
	}
	b.cancel()
	<-b.done
	b.cancel = nil
	b.fwd.Close()
}

// queue writes a synthetic study into the box's spool directory and queues it as
// the spool does.
func (b *testBox) queue(spec pacstest.StudySpec, callingAE string) []pacstest.Instance {
	b.t.Helper()
	dir := filepath.Join(b.dir, "spool", spec.StudyUID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.t.Fatal(err)
	}
	insts, err := pacstest.WriteStudy(dir, spec)
	if err != nil {
		b.t.Fatal(err)
	}
	st := spool.Study{StudyUID: spec.StudyUID, PatientID: "P1", Modality: spec.Modality, CallingAE: callingAE, CompletedAt: time.Now()}
	if st.Modality == "" {
		st.Modality = "CT"
	}
	for _, in := range insts {
		st.Instances = append(st.Instances, spool.Instance{SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: pacstest.CTImageStorage,
			StudyUID: in.StudyUID, SeriesUID: in.SeriesUID, TransferSyntax: pacstest.ExplicitVRLittleEndian, Modality: st.Modality,
			CallingAE: callingAE, Size: in.Size, SHA256: in.SHA256, Path: in.Path, ReceivedAt: time.Now()})
	}
	raw, _ := json.Marshal(st)
	if _, err := b.store.Queue(spool.ReadyQueue).Push(raw); err != nil {
		b.t.Fatal(err)
	}
	if b.fwd != nil {
		b.fwd.Notify()
	}
	return insts
}

func (b *testBox) queueLen() int {
	n, err := b.store.Queue(spool.ReadyQueue).Len()
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

// checkArchived asserts that the hub's archive holds each instance byte for byte.
func checkArchived(t *testing.T, h *testHub, insts []pacstest.Instance) {
	t.Helper()
	for _, in := range insts {
		rec, err := h.ingest.Instance(in.SOPInstanceUID)
		if err != nil {
			t.Fatalf("instance %s: %v", in.SOPInstanceUID, err)
		}
		got, err := pacstest.Describe(rec.Path)
		if err != nil {
			t.Fatal(err)
		}
		if got.SHA256 != in.SHA256 || rec.SHA256 != in.SHA256 {
			t.Fatalf("instance %s: archived sha256 %s (index %s), sent %s", in.SOPInstanceUID, got.SHA256, rec.SHA256, in.SHA256)
		}
	}
}

func sumSizes(insts []pacstest.Instance) (n int64) {
	for _, in := range insts {
		n += in.Size
	}
	return n
}

func uid(n int) string { return fmt.Sprintf("1.2.826.0.1.3680043.10.1311.9.%d", n) }
