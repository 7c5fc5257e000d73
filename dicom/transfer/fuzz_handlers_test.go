package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"lifeline/internal/hubstate/boltstate"
)

// Fuzz targets for the hub's create and manifest handlers (issue 16): whatever a box
// sends, the hub answers without failing, keeps each box to its own records, and
// allocates in proportion to what it was sent.

// fuzzIngest is an ingest on fresh state whose boxes are named by the X-Test-Device
// header, as the device check would name them from their certificates.
func fuzzIngest(f *testing.F) (*Ingest, http.Handler, *boltstate.Store) {
	dir := f.TempDir()
	store, err := boltstate.Open(filepath.Join(dir, "hub.db"), 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	authorize := func(r *http.Request) (string, error) { return "BOX-" + r.Header.Get("X-Test-Device"), nil }
	in, err := NewIngest(IngestConfig{Authorize: authorize, MaxInstanceSize: 1 << 30}, store, filepath.Join(dir, "archive"),
		nil, nil, testLog(f), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(in.Close)
	return in, in.Handler(), store
}

// allocated runs fn and returns the bytes it allocated (the whole process's, so
// the bound a target checks leaves room for the runtime's own).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzCreateRequest throws arbitrary creation headers at the hub: it answers each
// with a status below 500, opens an upload only for valid UIDs, a length within its
// bound and a well-formed digest, and only for the box that asked.
func FuzzCreateRequest(f *testing.F) {
	digest := ContentDigest([]byte("instance"))
	f.Add("1024", digest, "1.2.3.4", "1.2.3", "A")
	f.Add("0", digest, "1.2.3.4", "1.2.3", "A")
	f.Add("99999999999", digest, "1.2.3.4", "1.2.3", "B")
	f.Add("10", "sha-256=:AAAA:", "1.2.3.4", "1.2.3", "A")
	f.Add("10", digest, "../../etc/passwd", "1.2.3", "A")
	f.Add("10", digest, "1.2.3.4", "1.2..3", "B")
	f.Add("10", digest, strings.Repeat("1.", 40)+"1", "1.2.3", "A")
	in, h, store := fuzzIngest(f)
	f.Fuzz(func(t *testing.T, length, digest, sop, study, device string) {
		if !utf8.ValidString(device) {
			return // a device ID comes from an enrolled certificate, never raw bytes
		}
		req := httptest.NewRequest(http.MethodPost, UploadsPath, nil)
		for k, v := range map[string]string{hdrUploadLength: length, hdrReprDigest: digest, hdrSOPInstance: sop,
			hdrStudy: study, "X-Test-Device": device} {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		if n := allocated(func() { h.ServeHTTP(w, req) }); n > 4<<20 {
			t.Fatalf("a create request of %d header bytes allocated %d bytes", len(length+digest+sop+study), n)
		}
		if w.Code >= 500 {
			t.Fatalf("create answered %d: %s", w.Code, w.Body)
		}
		if w.Code >= 300 {
			return
		}
		up, err := store.Upload(context.Background(), filepath.Base(w.Header().Get("Location")))
		if err != nil {
			t.Fatalf("create answered %d without an upload: %v", w.Code, err)
		}
		if up.Device != "BOX-"+req.Header.Get("X-Test-Device") || ValidUID(up.SOPInstanceUID) != nil || ValidUID(up.StudyUID) != nil ||
			up.Length < 1 || up.Length > in.cfg.MaxInstanceSize || len(up.SHA256) != 64 {
			t.Fatalf("create opened %+v", up)
		}
	})
}

// FuzzManifestRequest throws arbitrary manifests at the hub from one box while
// another box's record of the same study stands: the hub answers each with a status
// below 500, accepts only manifests ParseManifest accepts for the study in the URL,
// and never changes the other box's record.
func FuzzManifestRequest(f *testing.F) {
	const study = "1.2.3"
	sha := strings.Repeat("ab", 32)
	other := `{"study_uid":"1.2.3","instances":[{"sop_instance_uid":"1.2.3.1","size":10,"sha256":"` + sha + `"}]}`
	f.Add(study, []byte(other))
	f.Add(study, []byte(`{"study_uid":"1.2.3","instances":[{"sop_instance_uid":"1.2.3.9","size":1,"sha256":"`+sha+`"}]}`))
	f.Add("1.2.4", []byte(other))
	f.Add(study, []byte(`{"study_uid":"1.2.3","instances":[]}`))
	f.Add(study, []byte(`{"study_uid":"1.2.3","instances":[{"sop_instance_uid":"1.2.3.1","size":-1,"sha256":"`+sha+`"}]}`))
	f.Add(study, []byte(`{"study_uid":"1.2.3","instances":[{"sop_instance_uid":"1.2.3.1"},{"sop_instance_uid":"1.2.3.1"}]}`))
	f.Add("..", []byte(`{"study_uid":"..","instances":[{"sop_instance_uid":"1"}]}`))
	f.Add(study, []byte(`[`))
	in, h, _ := fuzzIngest(f)
	put := func(device, study string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPut, StudiesPath+"/"+study+"/manifest", bytes.NewReader(body))
		req.Header.Set("X-Test-Device", device)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	if w := put("B", study, []byte(other)); w.Code != http.StatusOK {
		f.Fatalf("the other box's manifest: %d %s", w.Code, w.Body)
	}
	want, err := in.Receipt(context.Background(), "BOX-B", study)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, urlStudy string, body []byte) {
		if urlStudy == "" || strings.ContainsAny(urlStudy, "/?#%") || strings.IndexFunc(urlStudy, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
			return // not one plain path segment: the router, not the handler, answers it
		}
		var w *httptest.ResponseRecorder
		if n := allocated(func() { w = put("A", urlStudy, body) }); n > 64*uint64(len(body))+4<<20 {
			t.Fatalf("a manifest of %d bytes allocated %d bytes", len(body), n)
		}
		if w.Code >= 500 {
			t.Fatalf("manifest answered %d: %s", w.Code, w.Body)
		}
		m, perr := ParseManifest(body)
		accepted := perr == nil && m.StudyUID == urlStudy
		if (w.Code == http.StatusOK) != accepted {
			t.Fatalf("manifest answered %d; ParseManifest: %v", w.Code, perr)
		}
		if accepted {
			var rc StudyReceipt
			if err := json.Unmarshal(w.Body.Bytes(), &rc); err != nil || rc.StudyUID != urlStudy || rc.Expected < len(m.Instances) {
				t.Fatalf("receipt %s (%v) for a manifest of %d instances", w.Body, err, len(m.Instances))
			}
		}
		got, err := in.Receipt(context.Background(), "BOX-B", study)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("another box's manifest changed this box's receipt: %+v, %v; was %+v", got, err, want)
		}
	})
}
