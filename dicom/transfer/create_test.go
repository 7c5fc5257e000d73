package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/hubstate"
	"lifeline/internal/wait"
)

// TestCreationCarriesTheFirstChunk: at the box's defaults (512 KiB chunks, a small
// tail folded into the chunk before it), a CT study of 525 KB slices goes in one
// request per instance, the creation carrying the whole file, where it took a
// creation and an append before; and the box sends the manifest twice, nothing else.
func TestCreationCarriesTheFirstChunk(t *testing.T) {
	p := newPKI(t)
	hub := startHub(t, p, nil)
	box := newBox(t, p.enroll(t, "AMB-1900"), ForwarderConfig{HubURL: hub.url()})
	const n = 8
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(1901), Instances: n, Rows: 512, Columns: 512, Seed: 1901}, "CT1")
	box.start()
	wait.For(t, time.Minute, "study acknowledged", func() bool { return box.queueLen() == 0 })
	checkArchived(t, hub, insts)
	if got := hub.requests.Load(); got != n+2 {
		t.Fatalf("%d requests for %d instances of %d bytes, want one per instance and two manifests (%d)", got, n, insts[0].Size, n+2)
	}
	if st, _ := hub.ingest.Status(); st.BytesReceived != sumSizes(insts) {
		t.Fatalf("hub appended %d bytes for %d", st.BytesReceived, sumSizes(insts))
	}
}

// TestNewBoxAgainstHubWithoutCreationWithUpload: a hub from before creation with
// upload reads no body on a creation (here its handler is given the request without
// one). The box finds its first chunk not taken (offset 0 in the answer), sends it
// again in an append, and creates without a body from then on: the study arrives
// whole, and no more than the chunks of the creations already in flight is re-sent.
func TestNewBoxAgainstHubWithoutCreationWithUpload(t *testing.T) {
	p := newPKI(t)
	oldHub := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == UploadsPath {
				io.Copy(io.Discard, r.Body)
				r.Body, r.ContentLength = http.NoBody, 0
				r.Header.Del(hdrContentDigest)
				r.Header.Del("Content-Encoding")
			}
			next.ServeHTTP(w, r)
		})
	}
	hub := startSharedHubs(t, p, 1, oldHub)[0]
	const chunk, parallel = 64 << 10, 4
	box := newBox(t, p.enroll(t, "AMB-1902"), ForwarderConfig{HubURL: hub.url(), ChunkSize: chunk, Parallel: parallel})
	insts := box.queue(pacstest.StudySpec{StudyUID: uid(1902), Instances: 12, Rows: 128, Columns: 128, Seed: 1902}, "CT1")
	box.start()
	wait.For(t, time.Minute, "study acknowledged", func() bool { return box.queueLen() == 0 })
	for _, in := range insts {
		rec, err := hub.ingest.Instance(in.SOPInstanceUID)
		if err != nil || rec.SHA256 != in.SHA256 {
			t.Fatalf("instance %s: %+v, %v", in.SOPInstanceUID, rec, err)
		}
	}
	if got, total := hub.ingest.bytesReceived.Load(), sumSizes(insts); got != total {
		t.Fatalf("hub appended %d bytes for %d", got, total)
	}
	if st := box.fwd.Status(); st.ResentBytes > parallel*chunk*9/8 {
		t.Fatalf("re-sent %d bytes, want at most the first chunks of the creations in flight (%d)", st.ResentBytes, parallel*chunk*9/8)
	}
}

// FuzzCreateWithUpload throws creation requests carrying a first chunk at the hub:
// whatever the body, its encoding, digest and Upload-Complete, the hub answers below
// 500; a chunk that fails its Content-Digest or encoding opens no upload; an upload
// it opens holds exactly the chunk's decoded bytes, never more than its length.
func FuzzCreateWithUpload(f *testing.F) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		f.Fatal(err)
	}
	frame := enc.EncodeAll(bytes.Repeat([]byte("instance"), 64), nil)
	enc.Close()
	f.Add(uint32(8), []byte("instance"), false, "", true)
	f.Add(uint32(8), []byte("instance"), true, "", true)
	f.Add(uint32(64), []byte("instance"), false, "", true)
	f.Add(uint32(4), []byte("instance"), false, "", true)
	f.Add(uint32(8), []byte("instance"), false, "", false)
	f.Add(uint32(512), frame, false, "zstd", true)
	f.Add(uint32(100), frame, false, "zstd", true)
	f.Add(uint32(8), []byte("not zstd"), false, "zstd", true)
	f.Add(uint32(8), []byte("instance"), false, "br", true)
	f.Add(uint32(8), []byte{}, true, "", true)
	_, h, store := fuzzIngest(f)
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxChunk))
	if err != nil {
		f.Fatal(err)
	}
	defer dec.Close()
	seq := 0
	f.Fuzz(func(t *testing.T, length uint32, body []byte, complete bool, encoding string, digestOK bool) {
		seq++
		sop := fmt.Sprintf("1.2.826.0.1.3680043.10.1311.19.%d", seq) // a fresh upload each time
		sum := sha256.Sum256(body)
		req := httptest.NewRequest(http.MethodPost, UploadsPath, bytes.NewReader(body))
		req.Header.Set(hdrUploadLength, fmt.Sprint(length))
		req.Header.Set(hdrReprDigest, FormatDigest(sum[:]))
		req.Header.Set(hdrSOPInstance, sop)
		req.Header.Set(hdrStudy, "1.2.826.0.1.3680043.10.1311.19")
		req.Header.Set(hdrUploadComplete, formatBool(complete))
		req.Header.Set("Content-Type", partialUploadType)
		req.Header.Set("Content-Encoding", encoding)
		req.Header.Set("X-Test-Device", "A")
		digest := ContentDigest(body)
		if !digestOK {
			digest = ContentDigest(append([]byte("x"), body...))
		}
		req.Header.Set(hdrContentDigest, digest)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("creation with upload answered %d: %s", w.Code, w.Body)
		}
		up, err := store.Upload(context.Background(), uploadID("BOX-A", sop, hex.EncodeToString(sum[:])))
		if errors.Is(err, hubstate.ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(body) > 0 && !digestOK {
			t.Fatalf("a first chunk that failed its digest opened an upload: %d %+v", w.Code, up)
		}
		if up.Offset > up.Length {
			t.Fatalf("upload holds %d bytes of %d", up.Offset, up.Length)
		}
		if up.Offset == 0 {
			return
		}
		want := body
		if encoding == "zstd" {
			if want, err = dec.DecodeAll(body, nil); err != nil {
				t.Fatalf("hub took a chunk that does not decode: %v", err)
			}
		} else if encoding != "" && encoding != "identity" {
			t.Fatalf("hub took a chunk in Content-Encoding %q", encoding)
		}
		if up.Offset != int64(len(want)) {
			t.Fatalf("upload holds %d bytes after a first chunk of %d", up.Offset, len(want))
		}
	})
}
