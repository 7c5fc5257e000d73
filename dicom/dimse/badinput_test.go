package dimse_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/wait"
)

var ctContexts = []dimse.Context{
	{AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}},
	{AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}},
	{AbstractSyntax: dicom.MRImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}},
}

// mustEcho proves the box still serves after whatever the test did to it.
func mustEcho(t *testing.T, b *box) {
	t.Helper()
	a, err := dimse.Dial(context.Background(), b.addr, "CHECK", "LIFELINE", ctContexts, dimse.SCUOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("box no longer serves: %v", err)
	}
	defer a.Release()
	if st, err := a.Echo(context.Background()); err != nil || st != 0 {
		t.Fatalf("C-ECHO after bad input: status 0x%04x, %v", st, err)
	}
}

func waitLog(t *testing.T, b *box, substr string) {
	t.Helper()
	wait.For(t, 2*time.Second, fmt.Sprintf("a log line containing %q", substr), func() bool {
		return strings.Contains(b.logs.String(), substr)
	})
}

// readUntilClosed reads what the box sends until it closes, and returns it.
func readUntilClosed(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("box did not close the connection")
	}
	return out
}

func rawAssociate(t *testing.T, b *box) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	rq := &dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "RAW", ApplicationContext: dicom.ApplicationContextName, MaxPDU: 16384,
		Contexts: []dimse.PresentationContext{{ID: 1, AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}}}}
	c.Write(rq.Encode())
	p, err := dimse.NewReader(c, 1<<20).Read()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*dimse.AssociateAC); !ok {
		t.Fatalf("got %T, want A-ASSOCIATE-AC", p)
	}
	return c
}

func TestBadPDUs(t *testing.T) {
	b := startBox(t, dimse.SCPConfig{ARTIM: 300 * time.Millisecond}, spool.Config{})
	huge := []byte{0x01, 0, 0xff, 0xff, 0xff, 0xff}
	cases := []struct {
		name string
		data []byte
		log  string
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: box\r\n\r\n"), "no valid A-ASSOCIATE-RQ"},
		{"4 GiB PDU length", huge, "announces 4294967295 bytes"},
		{"truncated A-ASSOCIATE-RQ", (&dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "X"}}).Encode()[:40], "truncated"},
		{"release before associate", []byte{0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0}, "first PDU is not A-ASSOCIATE-RQ"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tc.data)
			if tc.name == "truncated A-ASSOCIATE-RQ" {
				c.(*net.TCPConn).CloseWrite()
			}
			readUntilClosed(t, c)
			waitLog(t, b, tc.log)
			mustEcho(t, b)
		})
	}
	t.Run("4 GiB P-DATA-TF inside an association", func(t *testing.T) {
		c := rawAssociate(t, b)
		defer c.Close()
		c.Write([]byte{0x04, 0, 0xff, 0xff, 0xff, 0xff})
		out := readUntilClosed(t, c)
		if len(out) < 1 || out[0] != 0x07 {
			t.Errorf("box answered % x, want an A-ABORT", out)
		}
		waitLog(t, b, "aborting association: protocol error")
		mustEcho(t, b)
	})
	t.Run("PDV on a context never accepted", func(t *testing.T) {
		c := rawAssociate(t, b)
		defer c.Close()
		pdv := []byte{0x04, 0, 0, 0, 0, 10, 0, 0, 0, 6, 99, 3, 1, 2, 3, 4}
		c.Write(pdv)
		readUntilClosed(t, c)
		waitLog(t, b, "which was not accepted")
		mustEcho(t, b)
	})
	t.Run("connection that never associates (ARTIM)", func(t *testing.T) {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		readUntilClosed(t, c)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("closed after %v, ARTIM is 300 ms", d)
		}
		mustEcho(t, b)
	})
}

func TestAssociationThatNeverReleasesIsAborted(t *testing.T) {
	b := startBox(t, dimse.SCPConfig{IdleTimeout: 300 * time.Millisecond}, spool.Config{})
	a, err := dimse.Dial(context.Background(), b.addr, "SILENT", "LIFELINE", ctContexts, dimse.SCUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, b, "peer silent too long")
	if _, err := a.Echo(context.Background()); err == nil {
		t.Errorf("C-ECHO on an association the box aborted succeeded")
	}
	if got := counter(t, b.reg, "lifeline_dicom_failures_total", "timeout"); got != 1 {
		t.Errorf("timeout failures = %v, want 1", got)
	}
	mustEcho(t, b)
}

// TestStoreStatuses checks each refusal status and that nothing refused is spooled.
func TestStoreStatuses(t *testing.T) {
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	ctx := context.Background()
	a, err := dimse.Dial(ctx, b.addr, "MODALITY", "LIFELINE", ctContexts, dimse.SCUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	good := phantom.Dataset(phantom.Spec{SOPInstanceUID: "2.25.9"})
	store := func(class, inst string, data []byte) uint16 {
		t.Helper()
		st, err := a.StoreDataset(ctx, class, inst, dicom.ExplicitVRLittleEndian, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := store(dicom.CTImageStorage, "2.25.9", good); st != dimse.StatusSuccess {
		t.Fatalf("good instance: status 0x%04x", st)
	}
	if st := store(dicom.CTImageStorage, "2.25.9", good); st != dimse.StatusSuccess {
		t.Fatalf("identical resend: status 0x%04x", st)
	}
	if st := store(dicom.CTImageStorage, "2.25.8", good); st != dimse.StatusDataSetMismatch {
		t.Errorf("SOP instance mismatch: status 0x%04x, want 0xA900", st)
	}
	if st := store(dicom.MRImageStorage, "2.25.9", good); st != dimse.StatusDataSetMismatch {
		t.Errorf("SOP class mismatch: status 0x%04x, want 0xA900", st)
	}
	if st := store(dicom.CTImageStorage, "2.25.7", []byte("%PDF-1.4 this is not a DICOM data set")); st != dimse.StatusCannotUnderstand {
		t.Errorf("non-DICOM data set: status 0x%04x, want 0xC000", st)
	}
	if st := store(dicom.CTImageStorage, "2.25.7", good[:len(good)-10]); st != dimse.StatusCannotUnderstand {
		t.Errorf("truncated data set: status 0x%04x, want 0xC000", st)
	}
	waitLog(t, b, "data set does not parse")
	waitLog(t, b, "identical bytes")
	if n := countInstances(t, b.spool); n != 1 {
		t.Errorf("spool holds %d instances, want 1", n)
	}
	// Different bytes under the same SOP Instance UID replace the stored copy.
	changed := phantom.Dataset(phantom.Spec{SOPInstanceUID: "2.25.9", Fill: 7})
	if st := store(dicom.CTImageStorage, "2.25.9", changed); st != dimse.StatusSuccess {
		t.Fatalf("changed resend: status 0x%04x", st)
	}
	waitLog(t, b, "replaced the stored copy")
	inst, _ := b.spool.Instance("2.25.9")
	if ds, _ := datasetOf(t, inst.Path); !bytes.Equal(ds, changed) {
		t.Errorf("spool kept the old bytes")
	}
	if n := countInstances(t, b.spool); n != 1 {
		t.Errorf("spool holds %d instances, want 1", n)
	}
}

// TestSOPClassNotMatchingContext sends a CT data set announced as MR on the CT
// context: the box refuses it with 0x0122.
func TestSOPClassNotMatchingContext(t *testing.T) {
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	c := rawAssociate(t, b) // context 1: CT, explicit VR LE
	defer c.Close()
	cmd := (&dimse.Command{Field: dimse.CStoreRQ, AffectedSOPClassUID: dicom.MRImageStorage, AffectedSOPInstanceUID: "2.25.1", MessageID: 1}).Encode()
	data := phantom.Dataset(phantom.Spec{SOPClassUID: dicom.MRImageStorage, SOPInstanceUID: "2.25.1"})
	c.Write(pdata(1, true, cmd))
	c.Write(pdata(1, false, data))
	rsp := readResponse(t, c)
	if rsp.Status != dimse.StatusSOPClassNotSupported {
		t.Errorf("status 0x%04x, want 0x0122", rsp.Status)
	}
	waitLog(t, b, "SOP class does not match its presentation context")
	if n := countInstances(t, b.spool); n != 0 {
		t.Errorf("spool holds %d instances, want 0", n)
	}
}

func pdata(ctx byte, command bool, b []byte) []byte {
	out := make([]byte, 12, 12+len(b))
	out[0] = 0x04
	binary.BigEndian.PutUint32(out[2:], uint32(len(b)+6))
	binary.BigEndian.PutUint32(out[6:], uint32(len(b)+2))
	out[10] = ctx
	out[11] = 2
	if command {
		out[11] |= 1
	}
	return append(out, b...)
}

func readResponse(t *testing.T, c net.Conn) *dimse.Command {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := dimse.NewReader(c, 1<<20).Read()
	if err != nil {
		t.Fatal(err)
	}
	pd, ok := p.(*dimse.PData)
	if !ok || len(pd.PDVs) != 1 {
		t.Fatalf("got %T, want one PDV", p)
	}
	cmd, err := dimse.DecodeCommand(pd.PDVs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestFullSpoolRefusesWithA700(t *testing.T) {
	b := startBox(t, dimse.SCPConfig{}, spool.Config{MinFreeBytes: 1 << 62}) // more than any disk has
	a, err := dimse.Dial(context.Background(), b.addr, "MODALITY", "LIFELINE", ctContexts, dimse.SCUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	data := phantom.Dataset(phantom.Spec{})
	st, err := a.StoreDataset(context.Background(), dicom.CTImageStorage, "2.25.1001", dicom.ExplicitVRLittleEndian, bytes.NewReader(data), int64(len(data)))
	if err != nil || st != dimse.StatusOutOfResources {
		t.Fatalf("status 0x%04x, %v; want 0xA700", st, err)
	}
	waitLog(t, b, "spool is full")
	if got := counter(t, b.reg, "lifeline_dicom_failures_total", "out_of_resources"); got != 1 {
		t.Errorf("out_of_resources failures = %v", got)
	}
	if st, err := a.Echo(context.Background()); err != nil || st != 0 {
		t.Errorf("association unusable after A700: %v", err)
	}
}

func TestAETitlePolicyAndAssociationLimit(t *testing.T) {
	b := startBox(t, dimse.SCPConfig{CallingAEs: []string{"CT1", "CHECK"}, MaxAssociations: 1}, spool.Config{})
	ctx := context.Background()
	_, err := dimse.Dial(ctx, b.addr, "STRANGER", "LIFELINE", ctContexts, dimse.SCUOptions{})
	var rj *dimse.RejectedError
	if !errors.As(err, &rj) || rj.Reason != 3 {
		t.Fatalf("unknown calling AE: %v, want rejection reason 3", err)
	}
	waitLog(t, b, "calling AE title not in the allow-list")
	a, err := dimse.Dial(ctx, b.addr, "CT1", "LIFELINE", ctContexts, dimse.SCUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dimse.Dial(ctx, b.addr, "CT1", "LIFELINE", ctContexts, dimse.SCUOptions{})
	if !errors.As(err, &rj) || rj.Result != 2 {
		t.Fatalf("second association over the limit: %v, want a transient rejection", err)
	}
	a.Release()
	wait.For(t, 5*time.Second, "the released association to end", func() bool { return b.scp.Status().ActiveAssociations == 0 })
	mustEcho(t, b)
}

// TestShutdownClosesAssociations checks Serve returns promptly with an open,
// idle association, which it aborts.
func TestShutdownClosesAssociations(t *testing.T) {
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	a, err := dimse.Dial(context.Background(), b.addr, "CT1", "LIFELINE", ctContexts, dimse.SCUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if _, err := a.Echo(context.Background()); err == nil {
		t.Errorf("association survived shutdown")
	}
	waitLog(t, b, "service is shutting down")
}
