package dimse_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
)

func pduSeeds() [][]byte {
	var ctxs []dimse.PresentationContext
	for i, c := range dicom.StorageSOPClasses[:20] {
		ctxs = append(ctxs, dimse.PresentationContext{ID: byte(2*i + 1), AbstractSyntax: c, TransferSyntaxes: dicom.StorableTransferSyntaxes[:4]})
	}
	rq := (&dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "CT1", MaxPDU: 16384, Contexts: ctxs}}).Encode()
	ac := (&dimse.AssociateAC{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "CT1", MaxPDU: 16384,
		Contexts: []dimse.PresentationContext{{ID: 1, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}}}}).Encode()
	cmd := (&dimse.Command{Field: dimse.CStoreRQ, AffectedSOPClassUID: dicom.CTImageStorage, AffectedSOPInstanceUID: "2.25.1", MessageID: 1}).Encode()
	pd := pdata(1, true, cmd)
	return [][]byte{
		rq, ac, pd, append(pd, pdata(1, false, []byte{8, 0, 0x16, 0, 'U', 'I', 2, 0, '1', 0})...),
		(&dimse.AssociateRJ{Result: 1, Source: 1, Reason: 7}).Encode(),
		{0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0}, {0x06, 0, 0, 0, 0, 4, 0, 0, 0, 0},
		(&dimse.Abort{Source: 2, Reason: 6}).Encode(),
		{0x04, 0, 0xff, 0xff, 0xff, 0xff}, rq[:50],
		{0x01, 0, 0, 1, 0, 1}, // an A-ASSOCIATE-RQ one byte over MaxAssociateLength
		{0x05, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0},
		// Asynchronous operations: a window proposed and answered, and a sub-item
		// of the wrong length.
		(&dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "CT1", MaxPDU: 16384, Contexts: ctxs[:1],
			AsyncWindow: &dimse.AsyncWindow{Invoked: 8, Performed: 1}}}).Encode(),
		(&dimse.AssociateAC{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "CT1", MaxPDU: 16384,
			AsyncWindow: &dimse.AsyncWindow{Invoked: 1, Performed: 3}}}).Encode(),
		asyncSubItem3,
	}
}

// asyncSubItem3 is an A-ASSOCIATE-RQ whose asynchronous operations window sub-item
// carries 3 bytes instead of 4.
var asyncSubItem3 = func() []byte {
	rq := (&dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "CT1",
		AsyncWindow: &dimse.AsyncWindow{Invoked: 2, Performed: 1}}}).Encode()
	i := bytes.Index(rq, []byte{0x53, 0, 0, 4})
	b := append(append([]byte{}, rq[:i+3]...), 3, 0, 2, 0)
	return append(b, rq[i+8:]...)
}()

// FuzzReadPDU feeds arbitrary byte streams to the PDU reader and the command decoder:
// no panic, no allocation beyond the limits, and associate PDUs that decode must
// survive an encode/decode round trip.
func FuzzReadPDU(f *testing.F) {
	for _, s := range pduSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := dimse.NewReader(bytes.NewReader(data), 1<<16)
		for {
			p, err := r.Read()
			if err != nil {
				return
			}
			switch p := p.(type) {
			case *dimse.PData:
				for _, v := range p.PDVs {
					if v.Command {
						dimse.DecodeCommand(v.Data)
					}
				}
			case *dimse.AssociateRQ:
				again, err := dimse.Decode(0x01, p.Encode()[6:])
				if err != nil {
					t.Fatalf("re-encoded A-ASSOCIATE-RQ does not decode: %v", err)
				}
				if rq := again.(*dimse.AssociateRQ); len(rq.Contexts) != len(p.Contexts) {
					t.Fatalf("round trip lost presentation contexts")
				} else if fmt.Sprint(rq.AsyncWindow) != fmt.Sprint(p.AsyncWindow) {
					t.Fatalf("round trip changed the asynchronous operations window: %v, then %v", p.AsyncWindow, rq.AsyncWindow)
				}
			}
		}
	})
}

// FuzzDecodeCommand feeds arbitrary command sets to the DIMSE decoder.
func FuzzDecodeCommand(f *testing.F) {
	f.Add((&dimse.Command{Field: dimse.CStoreRQ, AffectedSOPClassUID: dicom.CTImageStorage, AffectedSOPInstanceUID: "2.25.1", MessageID: 1}).Encode())
	f.Add((&dimse.Command{Field: dimse.CEchoRSP, RespondedTo: 3, Status: 0xA700, ErrorComment: "full"}).Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := dimse.DecodeCommand(data)
		if err != nil {
			return
		}
		if _, err := dimse.DecodeCommand(c.Encode()); err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
	})
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("LIFELINE_WRITE_CORPUS") != "1" {
		t.Skip("set LIFELINE_WRITE_CORPUS=1 to rewrite testdata/fuzz")
	}
	writeCorpus(t, "FuzzReadPDU", pduSeeds())
	writeCorpus(t, "FuzzDecodeCommand", [][]byte{
		(&dimse.Command{Field: dimse.CStoreRQ, AffectedSOPClassUID: dicom.CTImageStorage, AffectedSOPInstanceUID: "2.25.1", MessageID: 1}).Encode(),
		(&dimse.Command{Field: dimse.CEchoRQ, MessageID: 1, DataSetType: 0x0101}).Encode(),
	})
}

func writeCorpus(t *testing.T, name string, seeds [][]byte) {
	dir := filepath.Join("testdata", "fuzz", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var _ = io.EOF
