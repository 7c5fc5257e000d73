package dimse_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/spool"
	"lifeline/internal/peers"
)

// bigRequest is an A-ASSOCIATE-RQ of 128 presentation contexts, each proposing
// syntaxes transfer syntaxes: PS3.8's most contexts, with more syntaxes than any
// modality proposes.
func bigRequest(syntaxes int) []byte {
	var ctxs []dimse.PresentationContext
	for i := 0; i < 128; i++ {
		var ts []string
		for j := 0; j < syntaxes; j++ {
			ts = append(ts, dicom.StorableTransferSyntaxes[j%len(dicom.StorableTransferSyntaxes)])
		}
		ctxs = append(ctxs, dimse.PresentationContext{ID: byte(2*i + 1), AbstractSyntax: dicom.StorageSOPClasses[i%len(dicom.StorageSOPClasses)], TransferSyntaxes: ts})
	}
	return (&dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "BIG", ApplicationContext: dicom.ApplicationContextName,
		MaxPDU: 16384, Contexts: ctxs}}).Encode()
}

// TestControlPDULimits: the 64 KiB bound on A-ASSOCIATE-RQ leaves room for every real
// modality (DCMTK's storescu proposing all it knows, with and without compressed
// syntaxes, and 128 contexts of 16 syntaxes each) and refuses what is beyond it
// after its 6-byte header; release and abort PDUs are held to their fixed 4 bytes.
func TestControlPDULimits(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	for i, opts := range [][]string{nil, {"-xs"}, {"-xv"}} {
		args := append(append([]string{}, opts...), "-aec", "LIFELINE", "127.0.0.1", b.port, storescuFile(t, fmt.Sprintf("2.25.710.%d", i)))
		run(t, storescu, args...)
	}

	fits, over := bigRequest(16), bigRequest(20)
	if len(fits)-6 > dimse.MaxAssociateLength || len(over)-6 <= dimse.MaxAssociateLength {
		t.Fatalf("requests of %d and %d bytes do not straddle the %d-byte bound", len(fits)-6, len(over)-6, dimse.MaxAssociateLength)
	}
	answer := func(rq []byte) dimse.PDU {
		t.Helper()
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(rq)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		p, err := dimse.NewReader(c, 1<<20).Read()
		if err != nil {
			t.Fatalf("no answer to a %d-byte request: %v", len(rq), err)
		}
		return p
	}
	if p, ok := answer(fits).(*dimse.AssociateAC); !ok || len(p.Contexts) != 128 {
		t.Errorf("a %d-byte request of 128 contexts: got %T, want A-ASSOCIATE-AC with 128 answers", len(fits)-6, p)
	}
	if _, ok := answer(over).(*dimse.Abort); !ok {
		t.Errorf("a %d-byte request: want A-ABORT", len(over)-6)
	}
	waitLog(t, b, fmt.Sprintf("limit %d", dimse.MaxAssociateLength))

	c := rawAssociate(t, b)
	defer c.Close()
	c.Write([]byte{0x05, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0}) // A-RELEASE-RQ of 5 bytes
	if out := readUntilClosed(t, c); len(out) < 1 || out[0] != 0x07 {
		t.Errorf("a 5-byte A-RELEASE-RQ: box answered % x, want A-ABORT", out)
	}
	mustEcho(t, b)
}
