package pacs_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"lifeline/dicom/dimse"
	"lifeline/dicom/pacs"
	"lifeline/dicom/pacs/pacstest"
)

func toPACS(insts []pacstest.Instance) []pacs.Instance {
	out := make([]pacs.Instance, len(insts))
	for i, in := range insts {
		out[i] = pacs.Instance{SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: pacstest.CTImageStorage,
			StudyUID: in.StudyUID, TransferSyntax: pacstest.ExplicitVRLittleEndian, Path: in.Path, Size: in.Size}
	}
	return out
}

// checkStored asserts that Orthanc holds exactly the given instances, each with the
// data set the modality produced.
func checkStored(t *testing.T, o *pacstest.Orthanc, want []pacstest.Instance, wholeFile bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := o.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Orthanc holds %d instances, want %d", len(got), len(want))
	}
	bySOP := map[string]pacstest.StoredInstance{}
	for _, g := range got {
		bySOP[g.SOPInstanceUID] = g
	}
	for _, w := range want {
		g, ok := bySOP[w.SOPInstanceUID]
		if !ok {
			t.Errorf("instance %s missing in Orthanc", w.SOPInstanceUID)
			continue
		}
		if g.DatasetMD5 != w.DatasetMD5 {
			t.Errorf("instance %s: data set MD5 in Orthanc %s, sent %s", w.SOPInstanceUID, g.DatasetMD5, w.DatasetMD5)
		}
		if wholeFile && g.MD5 != w.MD5 {
			t.Errorf("instance %s: file MD5 in Orthanc %s, sent %s", w.SOPInstanceUID, g.MD5, w.MD5)
		}
	}
}

func TestSTOWDeliversToOrthanc(t *testing.T) {
	o := pacstest.StartOrthanc(t)
	insts, err := pacstest.WriteStudy(t.TempDir(), pacstest.StudySpec{StudyUID: "1.2.826.0.1.3680043.10.1311.7.1", Instances: 5, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	stow := pacs.NewSTOW(o.STOWURL, nil)
	ctx := context.Background()
	for i, err := range stow.Deliver(ctx, toPACS(insts[:2])) {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	// A second delivery of the same instances with new ones is what a retry after a
	// lost response looks like: it must succeed and store nothing twice.
	for i, err := range stow.Deliver(ctx, toPACS(insts)) {
		if err != nil {
			t.Fatalf("instance %d on retry: %v", i, err)
		}
	}
	checkStored(t, o, insts, true)
}

func TestSTOWReportsTransportFailure(t *testing.T) {
	insts, err := pacstest.WriteStudy(t.TempDir(), pacstest.StudySpec{StudyUID: "1.2.3.4", Instances: 1, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 9 of loopback.
	errs := pacs.NewSTOW("http://127.0.0.1:9/dicom-web", nil).Deliver(context.Background(), toPACS(insts))
	if errs[0] == nil || pacs.IsRefused(errs[0]) {
		t.Fatalf("want a transport error, got %v", errs[0])
	}
}

func TestParseSTOWResponse(t *testing.T) {
	body := `{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]}}]},
	"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.4"]},"00081197":{"vr":"US","Value":[272]}}]}}`
	r, err := pacs.ParseSTOWResponse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Stored["1.2.3"] || r.Failed["1.2.4"] != "failure reason 0x0110" || len(r.Stored) != 1 {
		t.Fatalf("parsed %+v", r)
	}
	for _, bad := range []string{"", "[]", "null", `{"00081199":{"Value":[1]}}`} {
		if _, err := pacs.ParseSTOWResponse([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func FuzzParseSTOWResponse(f *testing.F) {
	f.Add([]byte(`{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]}}]}}`))
	f.Add([]byte(`{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1"]},"00081197":{"vr":"US","Value":["x"]}}]}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := pacs.ParseSTOWResponse(body)
		if err == nil && (r.Stored == nil || r.Failed == nil) {
			t.Fatal("nil maps without an error")
		}
	})
}

func TestCStoreDeliversToOrthanc(t *testing.T) {
	o := pacstest.StartOrthanc(t)
	insts, err := pacstest.WriteStudy(t.TempDir(), pacstest.StudySpec{StudyUID: "1.2.826.0.1.3680043.10.1311.7.2", Instances: 4, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := pacs.NewCStore(o.DIMSE, "LIFELINEHUB", dimse.SCUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range cs.Deliver(context.Background(), toPACS(insts)) {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	// Orthanc writes its own file meta information for C-STORE; the data set must be
	// the modality's, byte for byte.
	checkStored(t, o, insts, false)
}

func TestCStoreReportsUnreachablePACS(t *testing.T) {
	insts, err := pacstest.WriteStudy(t.TempDir(), pacstest.StudySpec{StudyUID: "1.2.3.5", Instances: 2, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := pacs.NewCStore("NOBODY@127.0.0.1:9", "LIFELINEHUB", dimse.SCUOptions{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range cs.Deliver(context.Background(), toPACS(insts)) {
		if err == nil || pacs.IsRefused(err) {
			t.Fatalf("instance %d: want a transport error, got %v", i, err)
		}
	}
}

func TestParseDIMSETarget(t *testing.T) {
	if aet, addr, err := pacs.ParseDIMSETarget("ORTHANC@127.0.0.1:4242"); err != nil || aet != "ORTHANC" || addr != "127.0.0.1:4242" {
		t.Fatalf("got %q %q %v", aet, addr, err)
	}
	for _, bad := range []string{"", "ORTHANC", "@h:1", "A@", "A@host", "ABCDEFGHIJKLMNOPQ@h:1"} {
		if _, _, err := pacs.ParseDIMSETarget(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// TestSTOWRetriesOnAConnectionThePACSClosed: a PACS that drops a kept-alive connection
// just as the hub sends its next POST on it (Orthanc closes idle ones after a second)
// costs a retry on a fresh connection, not a failed delivery. The server here reads
// the whole second request on the old connection and closes it without a word.
func TestSTOWRetriesOnAConnectionThePACSClosed(t *testing.T) {
	insts, err := pacstest.WriteStudy(t.TempDir(), pacstest.StudySpec{StudyUID: "1.2.3.5", Instances: 1, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stored := fmt.Sprintf(`{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":[%q]}}]}}`, insts[0].SOPInstanceUID)
	var bodies []int64 // the body length of each request seen, in order
	var mu sync.Mutex
	go func() {
		for conn := 0; ; conn++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn, conn int) {
				defer c.Close()
				br := bufio.NewReader(c)
				for req := 0; ; req++ {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					n, _ := io.Copy(io.Discard, r.Body)
					mu.Lock()
					bodies = append(bodies, n)
					mu.Unlock()
					if conn == 0 && req == 1 {
						return // the race: closed instead of answered
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nContent-Length: %d\r\n\r\n%s", len(stored), stored)
				}
			}(c, conn)
		}
	}()
	stow := pacs.NewSTOW("http://"+ln.Addr().String()+"/dicom-web", &http.Client{Transport: &http.Transport{}})
	for round := 1; round <= 2; round++ {
		if err := stow.Deliver(context.Background(), toPACS(insts))[0]; err != nil {
			t.Fatalf("delivery %d: %v", round, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 3 || bodies[0] != bodies[1] || bodies[1] != bodies[2] || bodies[0] < insts[0].Size {
		t.Fatalf("request bodies seen %v: want three whole ones (the second sent again in full)", bodies)
	}
}
