package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"lifeline/internal/hubstate/boltstate"
)

func FuzzParseDigest(f *testing.F) {
	sum := sha256.Sum256([]byte("x"))
	f.Add(FormatDigest(sum[:]))
	f.Add("sha-512=:AAAA:, sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":;p=1")
	f.Add("sha-256=abc")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseDigest(v)
		if err != nil {
			return
		}
		if len(got) != sha256.Size {
			t.Fatalf("accepted a %d-byte digest", len(got))
		}
		if again, err := ParseDigest(FormatDigest(got)); err != nil || !bytes.Equal(again, got) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"study_uid":"1.2.3","instances":[{"sop_instance_uid":"1.2.3.4","size":10,"sha256":"` +
		"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" + `"}]}`))
	f.Add([]byte(`{"study_uid":"1.2.3","instances":[]}`))
	f.Add([]byte(`{"study_uid":"../../etc","instances":[{"sop_instance_uid":"1"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseManifest(body)
		if err != nil {
			return
		}
		if ValidUID(m.StudyUID) != nil || len(m.Instances) == 0 {
			t.Fatalf("accepted a bad manifest: %+v", m)
		}
		for _, in := range m.Instances {
			if ValidUID(in.SOPInstanceUID) != nil || in.Size < 0 {
				t.Fatalf("accepted a bad instance: %+v", in)
			}
		}
	})
}

func FuzzParseOffsetAndBool(f *testing.F) {
	for _, s := range []string{"0", "123", "-1", "?1", "?0", "1e3", "99999999999999999999", " 5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if n, err := ParseOffset(v); err == nil && n < 0 {
			t.Fatalf("negative offset %d from %q", n, v)
		}
		ParseBool(v)
	})
}

func FuzzValidUID(f *testing.F) {
	for _, s := range []string{"1.2.840.10008.1.2", "1..2", "01.2", "../x", "1.2.", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uid string) {
		if ValidUID(uid) != nil {
			return
		}
		// A valid UID names a file inside the archive and nowhere else.
		p := archivePath("/archive", uid, uid)
		if filepath.Dir(filepath.Dir(p)) != "/archive/studies" {
			t.Fatalf("UID %q escapes the archive: %s", uid, p)
		}
	})
}

// FuzzAppendRequest throws arbitrary headers and bodies at the hub's append handler:
// whatever arrives, the hub answers, the upload's offset only moves by chunks whose
// digest matched, and the chunk is streamed, not held: the handler allocates a
// bounded amount whatever the body's size.
func FuzzAppendRequest(f *testing.F) {
	f.Add("0", "?0", ContentDigest([]byte("abc")), "", []byte("abc"))
	f.Add("0", "?1", ContentDigest([]byte("abc")), "zstd", []byte("abc"))
	f.Add("5", "", "sha-256=:AAAA:", "gzip", []byte{})
	f.Add("0", "?0", "", "", []byte("x"))
	big := bytes.Repeat([]byte("lifeline"), 256<<10) // 2 MiB: held whole, it breaks the allocation bound
	f.Add("0", "?0", ContentDigest(big), "", big)
	dir := f.TempDir()
	store, err := boltstate.Open(filepath.Join(dir, "hub.db"), 0)
	if err != nil {
		f.Fatal(err)
	}
	defer store.Close()
	in, err := NewIngest(IngestConfig{Authorize: func(*http.Request) (string, error) { return "BOX", nil }},
		store, filepath.Join(dir, "archive"), nil, nil, testLog(f), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer in.Close()
	h := in.Handler()
	sum := sha256.Sum256(make([]byte, 64))
	create := httptest.NewRequest(http.MethodPost, UploadsPath, nil)
	create.Header.Set(hdrUploadLength, "64")
	create.Header.Set(hdrReprDigest, FormatDigest(sum[:]))
	create.Header.Set(hdrSOPInstance, "1.2.3.4")
	create.Header.Set(hdrStudy, "1.2.3")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, create)
	if rec.Code != http.StatusCreated {
		f.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	url := rec.Header().Get("Location")
	f.Fuzz(func(t *testing.T, offset, complete, digest, encoding string, body []byte) {
		req := httptest.NewRequest(http.MethodPatch, url, bytes.NewReader(body))
		for k, v := range map[string]string{hdrUploadOffset: offset, hdrUploadComplete: complete, hdrContentDigest: digest, "Content-Encoding": encoding} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		if n := allocated(func() { h.ServeHTTP(w, req) }); n > 1<<20 {
			t.Fatalf("an append of %d bytes allocated %d bytes", len(body), n)
		}
		if w.Code == 0 {
			t.Fatal("no answer")
		}
		up, err := store.Upload(context.Background(), filepath.Base(url))
		if err != nil {
			t.Fatal(err)
		}
		if up.Offset > up.Length {
			t.Fatalf("offset %d past length %d", up.Offset, up.Length)
		}
		if w.Code < 300 && len(body) > 0 {
			if d, err := ParseDigest(digest); err != nil || !bytes.Equal(d, sha256Of(body)) {
				t.Fatalf("hub accepted a chunk whose digest does not match: %d", w.Code)
			}
		}
	})
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
