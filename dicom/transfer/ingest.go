package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lifeline/dicom/pacs"
	"lifeline/internal/hubstate"
)

// Auditor records events for the hub's audit log: who sent what, what was verified,
// what was delivered, and who was refused.
type Auditor interface {
	Audit(event string, fields map[string]any)
}

// IngestConfig configures the hub's side of the transfer.
type IngestConfig struct {
	// Authorize names the device behind a request or refuses it (unknown, revoked,
	// no client certificate). Nil refuses every request: the hub fails closed.
	Authorize func(r *http.Request) (deviceID string, err error)
	// MaxInstanceSize bounds Upload-Length; zero means 4 GiB.
	MaxInstanceSize int64
	// PruneAfterDelivery removes an instance's file from the embedded archive once
	// the PACS confirmed it; the index entry stays. Without a PACS, files stay.
	PruneAfterDelivery bool
	// RetryMin and RetryMax bound the back-off between PACS delivery attempts;
	// zero means 2 s and 5 min.
	RetryMin, RetryMax time.Duration
	// DeliveryBatch is how many instances go to the PACS per request; zero means 16.
	DeliveryBatch int
	// MaxAppendsPerBox bounds the appends (PATCH) one box may have in progress at
	// once; zero means DefaultMaxAppendsPerBox. Appends over it are refused with 429
	// and retried by the box.
	MaxAppendsPerBox int
	// MaxAppends bounds the appends of all boxes in progress at once; zero means
	// DefaultMaxAppends.
	MaxAppends int
	// ScratchDir is where chunks are received before their digest is checked;
	// empty means the archive's uploads directory. Hubs sharing one archive directory
	// each give their own, so that a hub starting does not remove the chunks another
	// is receiving.
	ScratchDir string
	// DeliveryLease is how long a hub's claim on a delivery holds when its state is
	// shared with other hubs (hubstate.DeliveryClaims): a hub that died holding
	// claims delays those deliveries by as much. Zero means DefaultDeliveryLease.
	DeliveryLease time.Duration
}

// Ingest is the hub's end of the transfer: it serves the upload protocol, verifies
// each instance, keeps it in the embedded archive and delivers it to the PACS.
type Ingest struct {
	cfg      IngestConfig
	state    hubstate.Studies
	dir      string
	deliver  pacs.Deliverer
	audit    Auditor
	log      *slog.Logger
	decoders *decoderPool
	locks    [64]sync.Mutex // per-upload serialisation, striped by upload ID
	finalize sync.Mutex     // one instance enters the archive at a time (check, move, index)
	wake     chan struct{}  // tells the delivery loop that work arrived
	// appendSlots and manifestSlots bound the requests with a body in progress, per
	// box and in all, so that no box can make the hub hold more than a few of them.
	appendSlots, manifestSlots *slots
	busyLog                    logThrottle

	// The decoders are shared by every request; Close may release them only once no
	// handler still uses them, so handlers are counted and, after Close, refused.
	closing  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	bytesReceived atomic.Int64 // decoded chunk bytes appended, re-sends included
	wireBytes     atomic.Int64
	corruptChunks atomic.Int64
	duplicates    atomic.Int64
	lastDelivErr  atomic.Value // string

	m ingestMetrics
}

type ingestMetrics struct {
	requests      *prometheus.CounterVec
	refused       prometheus.Counter
	bytes         prometheus.Counter
	wireBytes     prometheus.Counter
	corruptChunks prometheus.Counter
	badDigest     prometheus.Counter
	stored        prometheus.Counter
	duplicates    prometheus.Counter
	quarantined   prometheus.Counter
	busy          *prometheus.CounterVec
	deliveries    *prometheus.CounterVec
	pending       prometheus.Gauge
}

// NewIngest opens the hub's ingest, keeping what it knows of uploads, instances,
// studies and deliveries in state and the instances' bytes in archiveDir. A nil
// delivery keeps instances in the embedded archive only. reg may be nil.
func NewIngest(cfg IngestConfig, state hubstate.Studies, archiveDir string, delivery pacs.Deliverer, audit Auditor, log *slog.Logger, reg prometheus.Registerer) (*Ingest, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.MaxInstanceSize <= 0 {
		cfg.MaxInstanceSize = 4 << 30
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 2 * time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	if cfg.DeliveryBatch <= 0 {
		cfg.DeliveryBatch = 16
	}
	if cfg.MaxAppendsPerBox <= 0 {
		cfg.MaxAppendsPerBox = DefaultMaxAppendsPerBox
	}
	if cfg.MaxAppends <= 0 {
		cfg.MaxAppends = DefaultMaxAppends
	}
	if cfg.ScratchDir == "" {
		cfg.ScratchDir = filepath.Join(archiveDir, "uploads")
	}
	if cfg.DeliveryLease <= 0 {
		cfg.DeliveryLease = DefaultDeliveryLease
	}
	if cfg.Authorize == nil {
		log.Error("transfer ingest has no Authorize callback: every upload will be refused")
	}
	for _, dir := range []string{filepath.Join(archiveDir, "uploads"), filepath.Join(archiveDir, "studies"), cfg.ScratchDir} {
		if err := mkdirDurable(dir); err != nil {
			return nil, fmt.Errorf("transfer: archive %s: %w", archiveDir, err)
		}
	}
	// Scratch files of chunks a crash cut off were never acknowledged.
	if scratch, err := filepath.Glob(filepath.Join(cfg.ScratchDir, scratchPrefix+"*")); err == nil {
		for _, f := range scratch {
			os.Remove(f)
		}
	}
	decoders, err := newDecoderPool(decodeSlots)
	if err != nil {
		return nil, err
	}
	in := &Ingest{cfg: cfg, state: state, dir: archiveDir, deliver: delivery, audit: audit, log: log,
		decoders: decoders, wake: make(chan struct{}, 1), appendSlots: newSlots(cfg.MaxAppendsPerBox, cfg.MaxAppends),
		manifestSlots: newSlots(manifestsPerBox, maxManifests)}
	in.lastDelivErr.Store("")
	in.m = ingestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_ingest_requests_total",
			Help: "Upload protocol requests by method and answer status."}, []string{"method", "status"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_ingest_refused_total",
			Help: "Requests refused because the box is unknown, revoked or unauthenticated."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_ingest_bytes_total",
			Help: "Instance bytes appended to uploads (after decompression, re-sends included)."}),
		wireBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_ingest_wire_bytes_total",
			Help: "Chunk bytes as received on the wire (zstd-compressed where the box compressed)."}),
		corruptChunks: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_ingest_corrupt_chunks_total",
			Help: "Chunks refused because their Content-Digest did not match; the box re-sends them."}),
		badDigest: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_ingest_digest_mismatch_total",
			Help: "Completed uploads whose Repr-Digest did not match the bytes; discarded."}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_ingest_instances_stored_total",
			Help: "Instances verified and stored in the archive."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_ingest_duplicates_total",
			Help: "Uploads of an instance the archive already held, stored once."}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{Name: "lifeline_ingest_quarantined_total",
			Help: "Instances held in quarantine because the archive holds their SOP Instance UID with other content."}),
		busy: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_ingest_busy_total",
			Help: "Requests refused with 429 because their box or the hub was at its bound on concurrent work."}, []string{"what"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_ingest_deliveries_total",
			Help: "PACS delivery attempts per instance by result."}, []string{"result"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lifeline_ingest_delivery_pending",
			Help: "Instances waiting for delivery to the PACS."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{in.m.requests, in.m.refused, in.m.bytes, in.m.wireBytes,
			in.m.corruptChunks, in.m.badDigest, in.m.stored, in.m.duplicates, in.m.quarantined, in.m.busy, in.m.deliveries, in.m.pending} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("transfer: register ingest metrics: %w", err)
			}
		}
	}
	return in, nil
}

// closeWait bounds how long Close waits for requests still in flight. A box that
// trickles a chunk must not hold the hub's shutdown; the process is ending then, and
// decoders left open are released with it.
const closeWait = 3 * time.Second

// Close refuses new requests, waits (at most closeWait) for the ones in flight, and
// then releases the decoders they share.
func (in *Ingest) Close() {
	in.closing.Lock()
	in.closed = true
	in.closing.Unlock()
	done := make(chan struct{})
	go func() { in.inflight.Wait(); close(done) }()
	select {
	case <-done:
		in.decoders.close()
	case <-time.After(closeWait):
		in.log.Warn("transfer: requests still in flight at shutdown; leaving the chunk decoders to the process exit")
	}
}

// enter admits a request unless the ingest is closing; the caller calls leave.
func (in *Ingest) enter() bool {
	in.closing.RLock()
	defer in.closing.RUnlock()
	if in.closed {
		return false
	}
	in.inflight.Add(1)
	return true
}

// Handler serves UploadsPath and StudiesPath. Every request must pass Authorize.
func (in *Ingest) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+UploadsPath, in.create)
	mux.HandleFunc("HEAD "+UploadsPath+"/{id}", in.head)
	mux.HandleFunc("PATCH "+UploadsPath+"/{id}", in.appendChunk)
	mux.HandleFunc("DELETE "+UploadsPath+"/{id}", in.cancel)
	mux.HandleFunc("PUT "+StudiesPath+"/{study}/manifest", in.manifest)
	mux.HandleFunc("GET "+StudiesPath+"/{study}", in.receipt)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() { in.m.requests.WithLabelValues(r.Method, fmt.Sprint(sw.status)).Inc() }()
		if !in.enter() {
			writeProblem(sw, http.StatusServiceUnavailable, ProblemInternalFailed, "hub is shutting down", "retry after it restarts")
			return
		}
		defer in.inflight.Done()
		device, err := in.authorize(r)
		if err != nil {
			in.m.refused.Inc()
			in.log.Warn("transfer: refused a box", "device", device, "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
			in.emit("transfer.refused", map[string]any{"device": device, "remote": r.RemoteAddr, "path": r.URL.Path, "reason": err.Error()})
			writeProblem(sw, http.StatusForbidden, ProblemForbidden, "box not allowed to upload", err.Error())
			return
		}
		sw.Header().Set(hdrInterop, interopVersion)
		mux.ServeHTTP(sw, r.WithContext(withDevice(r.Context(), device)))
	})
}

func (in *Ingest) authorize(r *http.Request) (string, error) {
	if in.cfg.Authorize == nil {
		return "", errors.New("hub has no device authorisation configured")
	}
	return in.cfg.Authorize(r)
}

func (in *Ingest) emit(event string, fields map[string]any) {
	if in.audit != nil {
		in.audit.Audit(event, fields)
	}
}

func (in *Ingest) lock(id string) func() {
	h := fnv.New32a()
	io.WriteString(h, id)
	l := &in.locks[h.Sum32()%uint32(len(in.locks))]
	l.Lock()
	return l.Unlock
}

// uploadID is derived from what the upload is, so that creating it again after a
// crash on either side finds the same upload and its offset instead of starting over.
func uploadID(device, sop, sha string) string {
	s := sha256.Sum256([]byte(device + "\x00" + sop + "\x00" + sha))
	return hex.EncodeToString(s[:16])
}

// create handles POST UploadsPath: it opens (or finds) the upload of one instance.
// The request may carry the upload's first chunk (creation with upload, as tus and
// the resumable-upload draft allow), with the fields and checks of an append: a small
// instance is then one request, and a CT slice one request instead of two. A POST
// without a body, as boxes before this sent, creates the upload as it always did.
func (in *Ingest) create(w http.ResponseWriter, r *http.Request) {
	device := deviceOf(r.Context())
	length, err := ParseOffset(r.Header.Get(hdrUploadLength))
	if err != nil || length == 0 || length > in.cfg.MaxInstanceSize {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad Upload-Length",
			fmt.Sprintf("want 1..%d bytes, got %q", in.cfg.MaxInstanceSize, r.Header.Get(hdrUploadLength)))
		return
	}
	sum, err := ParseDigest(r.Header.Get(hdrReprDigest))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad Repr-Digest", err.Error())
		return
	}
	rec := hubstate.Upload{
		Device: device, SOPInstanceUID: r.Header.Get(hdrSOPInstance), SOPClassUID: r.Header.Get(hdrSOPClass),
		StudyUID: r.Header.Get(hdrStudy), TransferSyntax: r.Header.Get(hdrTransferSyntax),
		Length: length, SHA256: hex.EncodeToString(sum), CreatedAt: time.Now().UTC(),
	}
	for name, uid := range map[string]string{hdrSOPInstance: rec.SOPInstanceUID, hdrStudy: rec.StudyUID} {
		if err := ValidUID(uid); err != nil {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad "+name, err.Error())
			return
		}
	}
	rec.ID = uploadID(device, rec.SOPInstanceUID, rec.SHA256)
	first, ok := in.receiveFirstChunk(w, r)
	if !ok {
		return
	}
	defer first.discard()
	defer in.lock(rec.ID)()

	// An instance whose UID the archive holds with other content is taken all the
	// same: it is quarantined when complete (finish), not refused here.
	got, err := in.state.CreateUpload(r.Context(), rec)
	if err != nil {
		in.internalError(w, "create upload", err)
		return
	}
	rec = got
	w.Header().Set("Location", UploadsPath+"/"+rec.ID)
	// The first chunk is taken only where it belongs: an upload found with bytes
	// already (created before a crash or at another hub) answers its offset, and the
	// box goes on from there.
	if first.chunk != nil && !rec.Complete && rec.Offset == 0 {
		// From here the box may go away: what it sent is checked and is recorded anyway.
		ctx := context.WithoutCancel(r.Context())
		if rec, ok = in.stage(ctx, w, rec, first.chunk, first.zstd, first.complete); !ok {
			return
		}
		if first.complete {
			in.finish(ctx, w, rec)
			return
		}
	}
	setOffsetHeaders(w, rec)
	if rec.Complete {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// firstChunk is the chunk a creation request carries, if any.
type firstChunk struct {
	chunk    *chunkFile // nil: no body
	zstd     bool
	complete bool
	release  func()
}

func (c firstChunk) discard() {
	if c.chunk != nil {
		c.chunk.discard()
	}
	if c.release != nil {
		c.release()
	}
}

// receiveFirstChunk reads a creation request's body as an append at offset 0 reads
// its own (append slot, Content-Digest, Content-Encoding, at most MaxChunk). A
// request without a body, or with an empty one, has no chunk. On failure it has
// answered the box.
func (in *Ingest) receiveFirstChunk(w http.ResponseWriter, r *http.Request) (firstChunk, bool) {
	var fc firstChunk
	if r.ContentLength == 0 && r.Header.Get(hdrContentDigest) == "" {
		return fc, true
	}
	if v := r.Header.Get(hdrUploadComplete); v != "" {
		var err error
		if fc.complete, err = ParseBool(v); err != nil {
			writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "bad Upload-Complete", err.Error())
			return fc, false
		}
	}
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "zstd":
		fc.zstd = true
	default:
		writeProblem(w, http.StatusUnsupportedMediaType, ProblemBadRequest, "unsupported Content-Encoding", enc)
		return fc, false
	}
	release, ok := in.appendSlots.acquire(deviceOf(r.Context()))
	if !ok {
		in.busy(w, r, "appends")
		return fc, false
	}
	fc.release = release
	chunk, ok := in.receiveChunk(w, r, 0)
	if !ok {
		release()
		return firstChunk{}, false
	}
	if chunk.size == 0 {
		chunk.discard()
		chunk = nil
	}
	fc.chunk = chunk
	return fc, true
}

// head handles HEAD on an upload: the offset from which the box resumes.
func (in *Ingest) head(w http.ResponseWriter, r *http.Request) {
	rec, ok := in.loadUpload(w, r)
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	setOffsetHeaders(w, rec)
	w.WriteHeader(http.StatusNoContent)
}

// cancel handles DELETE on an upload: the box gives the upload up.
func (in *Ingest) cancel(w http.ResponseWriter, r *http.Request) {
	rec, ok := in.loadUpload(w, r)
	if !ok {
		return
	}
	defer in.lock(rec.ID)()
	// Under the partial file's lock, as every change to it is, so that a hub sharing
	// the staging directory is not cut off in the middle of an append.
	release, ok := in.lockExisting(r.Context(), w, rec)
	if !ok {
		return
	}
	defer release()
	if err := in.dropUpload(r.Context(), rec); err != nil {
		in.internalError(w, "cancel upload", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (in *Ingest) loadUpload(w http.ResponseWriter, r *http.Request) (hubstate.Upload, bool) {
	id := r.PathValue("id")
	rec, err := in.state.Upload(r.Context(), id)
	if errors.Is(err, hubstate.ErrNotFound) || (err == nil && rec.Device != deviceOf(r.Context())) {
		writeProblem(w, http.StatusNotFound, ProblemUnknownUpload, "no such upload", id)
		return rec, false
	}
	if err != nil {
		in.internalError(w, "read upload", err)
		return rec, false
	}
	return rec, true
}

// dropUpload forgets an upload and its partial file.
func (in *Ingest) dropUpload(ctx context.Context, rec hubstate.Upload) error {
	if err := os.Remove(partialPath(in.dir, rec.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return in.state.DropUpload(ctx, rec.ID)
}

func setOffsetHeaders(w http.ResponseWriter, rec hubstate.Upload) {
	w.Header().Set(hdrUploadOffset, fmt.Sprint(rec.Offset))
	w.Header().Set(hdrUploadLength, fmt.Sprint(rec.Length))
	w.Header().Set(hdrUploadComplete, formatBool(rec.Complete))
}

func (in *Ingest) internalError(w http.ResponseWriter, what string, err error) {
	in.log.Error("transfer: "+what+" failed", "err", err)
	writeProblem(w, http.StatusInternalServerError, ProblemInternalFailed, what+" failed on the hub", err.Error())
}

func writeProblem(w http.ResponseWriter, status int, typ, title, detail string) {
	w.Header().Set("Content-Type", problemType)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Problem{Type: typ, Title: title, Status: status, Detail: detail})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
