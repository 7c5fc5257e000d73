package dimse_test

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/durable"
	"lifeline/internal/wait"
)

// associationSeeds are whole client byte streams: an association that echoes, stores
// and releases; one that stores a data set that does not parse; one with an invalid
// UID; one that aborts in the middle of a data set.
func associationSeeds() [][]byte {
	rq := (&dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "FUZZ", ApplicationContext: dicom.ApplicationContextName,
		MaxPDU: 16384, Contexts: []dimse.PresentationContext{
			{ID: 1, AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}},
			{ID: 3, AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}},
		}}}).Encode()
	echo := pdata(1, true, (&dimse.Command{Field: dimse.CEchoRQ, AffectedSOPClassUID: dicom.VerificationSOPClass, MessageID: 1, DataSetType: 0x0101}).Encode())
	store := func(sop string, data []byte) []byte {
		cmd := (&dimse.Command{Field: dimse.CStoreRQ, AffectedSOPClassUID: dicom.CTImageStorage, AffectedSOPInstanceUID: sop, MessageID: 2}).Encode()
		return append(pdata(3, true, cmd), pdata(3, false, data)...)
	}
	release := []byte{0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0}
	abort := (&dimse.Abort{Source: 0, Reason: 0}).Encode()
	good := phantom.Dataset(phantom.Spec{SOPInstanceUID: "2.25.900", Rows: 2, Columns: 2})
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	asyncRQ := (&dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "FUZZ", ApplicationContext: dicom.ApplicationContextName,
		MaxPDU: 16384, AsyncWindow: &dimse.AsyncWindow{Invoked: 4, Performed: 1}, Contexts: []dimse.PresentationContext{
			{ID: 3, AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}},
		}}}).Encode()
	good2 := phantom.Dataset(phantom.Spec{SOPInstanceUID: "2.25.904", Rows: 2, Columns: 2})
	return [][]byte{
		join(rq, echo, store("2.25.900", good), release),
		join(rq, store("2.25.901", []byte("not a data set")), release),
		join(rq, store("../2.25.902", phantom.Dataset(phantom.Spec{SOPInstanceUID: "../2.25.902", Rows: 2, Columns: 2})), release),
		join(rq, store("2.25.903", good[:len(good)/2])[:len(good)/2], abort),
		join(rq, echo, echo, release),
		// Asynchronous operations: two C-STOREs before either response, then release.
		join(asyncRQ, store("2.25.900", good), store("2.25.904", good2), release),
	}
}

// FuzzAssociation plays arbitrary client byte streams against the real receiver and
// spool over loopback. Whatever comes in, the receiver closes the connection (it never
// hangs), keeps serving, leaves no partial file behind, indexes nothing under an
// invalid UID, and its heap stays small: one connection can cost at most the bounded
// PDUs, never what a length field announces.
func FuzzAssociation(f *testing.F) {
	for _, s := range associationSeeds() {
		f.Add(s)
	}
	b := startBox(f, dimse.SCPConfig{ARTIM: 2 * time.Second, IdleTimeout: 2 * time.Second, MaxPDU: 64 << 10}, spool.Config{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			io.Copy(io.Discard, c) // the box's answers, until it closes
		}()
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("the receiver kept the connection open 10 s after the input ended")
		}
		wait.For(t, 5*time.Second, "the connection to be released by the receiver", func() bool {
			return b.scp.Status().OpenConnections == 0
		})
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > 256<<20 {
			t.Fatalf("heap in use %d MiB after one connection", ms.HeapInuse>>20)
		}
		b.spool.Instances(func(in spool.Instance) error {
			if !dicom.ValidUID(in.SOPInstanceUID) || !dicom.ValidUID(in.StudyUID) {
				t.Errorf("indexed an instance under an invalid UID: %.80q", in.SOPInstanceUID)
			}
			return nil
		})
		filepath.Walk(b.spool.Dir(), func(p string, info os.FileInfo, err error) error {
			if err == nil && durable.IsPartial(p) {
				t.Errorf("partial file left after the connection closed: %s", p)
			}
			return nil
		})
	})
}

func TestWriteAssociationCorpus(t *testing.T) {
	if os.Getenv("LIFELINE_WRITE_CORPUS") != "1" {
		t.Skip("set LIFELINE_WRITE_CORPUS=1 to rewrite testdata/fuzz")
	}
	writeCorpus(t, "FuzzAssociation", associationSeeds())
}
