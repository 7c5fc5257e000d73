package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"lifeline/dicom/pacs"
	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/hubstate/pgstate"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// pgHub is one hub's ingest on a shared PostgreSQL state, served over plain
// HTTP to one box (AMB-1): the hub's own TLS and device check are not what these
// tests are about.
type pgHub struct {
	state *pgstate.Store
	in    *Ingest
	srv   *httptest.Server
}

// newPGHub opens the state at dsn as hub name, with its archive in archive (a
// directory several hubs share, or its own), and serves its ingest.
func newPGHub(t *testing.T, dsn, name, archive string, delivery pacs.Deliverer, lease time.Duration) *pgHub {
	t.Helper()
	store, err := pgstate.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	h := &pgHub{state: store.InArchive("shared:" + archive).ClaimingAs(name)}
	h.in, err = NewIngest(IngestConfig{
		Authorize:     func(*http.Request) (string, error) { return "AMB-1", nil },
		ScratchDir:    t.TempDir(),
		DeliveryLease: lease,
		RetryMin:      100 * time.Millisecond,
	}, h.state, archive, delivery, nil, testLog(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.in.Handler())
	t.Cleanup(h.die)
	return h
}

// die stops the hub: its server, its ingest and its connections to the state.
func (h *pgHub) die() {
	h.srv.CloseClientConnections()
	h.srv.Close()
	h.in.Close()
	h.state.Close()
}

// do sends one upload protocol request to the hub and returns the answer's status
// and Upload-Offset.
func (h *pgHub) do(t *testing.T, method, path string, hdr map[string]string, body []byte) (int, int64) {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	off, _ := strconv.ParseInt(resp.Header.Get(hdrUploadOffset), 10, 64)
	return resp.StatusCode, off
}

// create opens the upload of inst (whose bytes are file) and returns its path.
func (h *pgHub) create(t *testing.T, inst pacstest.Instance, file []byte) string {
	t.Helper()
	sum := sha256.Sum256(file)
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+UploadsPath, nil)
	for k, v := range map[string]string{hdrUploadLength: fmt.Sprint(len(file)), hdrReprDigest: FormatDigest(sum[:]),
		hdrSOPInstance: inst.SOPInstanceUID, hdrStudy: inst.StudyUID} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create upload: %s", resp.Status)
	}
	return resp.Header.Get("Location")
}

// appendAt sends file[from:to] as one append and returns the status and the offset
// the hub answers.
func (h *pgHub) appendAt(t *testing.T, path string, file []byte, from, to int) (int, int64) {
	t.Helper()
	chunk := file[from:to]
	return h.do(t, http.MethodPatch, path, map[string]string{hdrUploadOffset: fmt.Sprint(from),
		hdrUploadComplete: formatBool(to == len(file)), hdrContentDigest: ContentDigest(chunk)}, chunk)
}

// oneInstance writes one CT instance of about 130 KB and returns it with its bytes.
func oneInstance(t *testing.T, seed uint64) (pacstest.Instance, []byte) {
	t.Helper()
	dir := t.TempDir()
	study, err := pacstest.WriteStudy(dir, pacstest.StudySpec{StudyUID: fmt.Sprint("2.25.1818", seed), Instances: 1,
		Rows: 256, Columns: 256, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(study[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	return study[0], file
}

// TestUploadResumesAtAnotherHub: hubs A and B share a PostgreSQL state and a staging
// and archive directory. Hub A takes the first half of an instance and dies; hub B
// says the upload stands at that offset, takes the second half, and archives an
// instance whose bytes are the box's. Nothing is sent twice. A hub with an archive
// of its own finds the offset in the state but not the bytes, and tells the box to
// start again rather than filling the gap.
func TestUploadResumesAtAnotherHub(t *testing.T) {
	dsn := peers.Postgres(t)
	shared := filepath.Join(t.TempDir(), "shared", "archive")
	inst, file := oneInstance(t, 1)
	half := len(file) / 2

	a := newPGHub(t, dsn, "hub-a", shared, nil, 0)
	b := newPGHub(t, dsn, "hub-b", shared, nil, 0)
	path := a.create(t, inst, file)
	if st, off := a.appendAt(t, path, file, 0, half); st != http.StatusNoContent || off != int64(half) {
		t.Fatalf("hub A: first half: %d at %d", st, off)
	}
	a.die()

	if st, off := b.do(t, http.MethodHead, path, nil, nil); st != http.StatusNoContent || off != int64(half) {
		t.Fatalf("hub B: HEAD after hub A died: %d at offset %d, want 204 at %d", st, off, half)
	}
	if st, off := b.appendAt(t, path, file, half, len(file)); st != http.StatusOK || off != int64(len(file)) {
		t.Fatalf("hub B: second half: %d at %d, want 200 and the whole instance", st, off)
	}
	rec, err := b.in.Instance(inst.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	archived, err := os.ReadFile(rec.Path)
	if err != nil {
		t.Fatalf("the archived file: %v", err)
	}
	if !bytes.Equal(archived, file) || filepath.Dir(filepath.Dir(filepath.Dir(rec.Path))) != shared {
		t.Fatalf("hub B archived %d bytes at %s; want the box's %d bytes in the shared archive", len(archived), rec.Path, len(file))
	}
	if got := b.in.bytesReceived.Load(); got != int64(len(file)-half) {
		t.Fatalf("hub B took %d bytes, want only the %d hub A had not", got, len(file)-half)
	}

	// The same, with hub C keeping its own archive (no shared_dir).
	inst2, file2 := oneInstance(t, 2)
	d := newPGHub(t, dsn, "hub-d", shared, nil, 0)
	c := newPGHub(t, dsn, "hub-c", filepath.Join(t.TempDir(), "own"), nil, 0)
	path = d.create(t, inst2, file2)
	if st, _ := d.appendAt(t, path, file2, 0, half); st != http.StatusNoContent {
		t.Fatalf("hub D: first half: %d", st)
	}
	if st, _ := c.appendAt(t, path, file2, half, len(file2)); st != http.StatusNotFound {
		t.Fatalf("hub C, without the staged bytes: %d, want 404 (unknown upload: create it again)", st)
	}
	if st, _ := c.do(t, http.MethodHead, path, nil, nil); st != http.StatusNotFound {
		t.Fatalf("hub C: HEAD of the dropped upload: %d, want 404", st)
	}
}

// TestPartialFileLockedAcrossHubs: while another process holds an upload's partial
// file (an open file description lock, as a hub on another machine would through
// NFS), an append waits for it instead of writing beside it, and goes on once it is
// let go.
func TestPartialFileLockedAcrossHubs(t *testing.T) {
	dsn := peers.Postgres(t)
	shared := filepath.Join(t.TempDir(), "archive")
	inst, file := oneInstance(t, 3)
	a := newPGHub(t, dsn, "hub-a", shared, nil, 0)
	path := a.create(t, inst, file)
	if st, _ := a.appendAt(t, path, file, 0, 1000); st != http.StatusNoContent {
		t.Fatalf("first chunk: %d", st)
	}
	held, err := lockPartial(context.Background(), partialPath(shared, filepath.Base(path)), false)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		st, _ := a.appendAt(t, path, file, 1000, 2000)
		done <- st
	}()
	select {
	case st := <-done:
		t.Fatalf("an append was answered %d while another process held the partial file", st)
	case <-time.After(500 * time.Millisecond):
	}
	held.release()
	select {
	case st := <-done:
		if st != http.StatusNoContent {
			t.Fatalf("the append after the lock was let go: %d", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the append still waits after the lock was let go")
	}

	// A cancel takes its turn too: it neither removes the file under another
	// process's append nor is refused once that one let go.
	held, err = lockPartial(context.Background(), partialPath(shared, filepath.Base(path)), false)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		st, _ := a.do(t, http.MethodDelete, path, nil, nil)
		done <- st
	}()
	select {
	case st := <-done:
		t.Fatalf("a cancel was answered %d while another process held the partial file", st)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := os.Stat(partialPath(shared, filepath.Base(path))); err != nil {
		t.Fatalf("the partial file under another process's lock: %v", err)
	}
	held.release()
	select {
	case st := <-done:
		if st != http.StatusNoContent {
			t.Fatalf("the cancel after the lock was let go: %d", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancel still waits after the lock was let go")
	}
	if _, err := os.Stat(partialPath(shared, filepath.Base(path))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the cancelled upload's partial file: %v, want it removed", err)
	}
}

// TestDeliveryTakenOverFromDeadHub: hub A archives an instance into the shared
// archive and claims its delivery, then dies before delivering it. Hub B leaves it
// alone while A's claim holds, then delivers it to the PACS (a real Orthanc) once
// the claim ran out: once, with the box's data set.
func TestDeliveryTakenOverFromDeadHub(t *testing.T) {
	dsn := peers.Postgres(t)
	orthanc := pacstest.StartOrthanc(t)
	stow := pacs.NewSTOW(orthanc.STOWURL, &http.Client{Timeout: time.Minute})
	shared := filepath.Join(t.TempDir(), "archive")
	inst, file := oneInstance(t, 4)
	const lease = 3 * time.Second

	a := newPGHub(t, dsn, "hub-a", shared, stow, lease)
	path := a.create(t, inst, file)
	if st, _ := a.appendAt(t, path, file, 0, len(file)); st != http.StatusOK {
		t.Fatalf("hub A: the instance: %d", st)
	}
	// Hub A's delivery loop claims the delivery, and the hub dies before it is made.
	claimed, _, err := a.state.ClaimDeliveries(context.Background(), time.Now(), lease, 16)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("hub A claims %d deliveries (%v), want its instance", len(claimed), err)
	}
	claimedAt := time.Now()
	a.die()

	b := newPGHub(t, dsn, "hub-b", shared, stow, lease)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- b.in.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	var stored []pacstest.StoredInstance
	wait.For(t, 30*time.Second, "hub B to deliver hub A's instance", func() bool {
		stored, err = orthanc.Instances(context.Background())
		return err == nil && len(stored) > 0
	})
	if took := time.Since(claimedAt); took < lease {
		t.Fatalf("hub B delivered %v after hub A's claim, within its %v lease", took, lease)
	}
	if len(stored) != 1 || stored[0].SOPInstanceUID != inst.SOPInstanceUID || stored[0].DatasetMD5 != inst.DatasetMD5 {
		t.Fatalf("Orthanc holds %+v, want the one instance with data set MD5 %s", stored, inst.DatasetMD5)
	}
	wait.For(t, 10*time.Second, "the delivery recorded", func() bool {
		rec, err := b.in.Instance(inst.SOPInstanceUID)
		return err == nil && !rec.DeliveredAt.IsZero()
	})
	if rec, _ := b.in.Instance(inst.SOPInstanceUID); rec.Attempts != 1 {
		t.Fatalf("the instance was delivered in %d attempts, want 1", rec.Attempts)
	}
	sum := sha256.Sum256(file)
	if rec, _ := b.in.Instance(inst.SOPInstanceUID); rec.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("archived digest %s", rec.SHA256)
	}
}
