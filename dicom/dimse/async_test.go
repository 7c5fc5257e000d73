package dimse_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/wait"
)

// heldSink is a sink whose commits wait until the test releases them, counting how
// many wait at once.
type heldSink struct {
	mu       sync.Mutex
	inflight int
	most     int
	release  chan struct{}
}

func (s *heldSink) Begin(dicom.Incoming) (dicom.InstanceWriter, error) { return &heldWriter{s: s}, nil }

func (s *heldSink) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

type heldWriter struct{ s *heldSink }

func (w *heldWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *heldWriter) Abort()                      {}
func (w *heldWriter) Commit() error {
	w.s.mu.Lock()
	w.s.inflight++
	w.s.most = max(w.s.most, w.s.inflight)
	w.s.mu.Unlock()
	<-w.s.release
	w.s.mu.Lock()
	w.s.inflight--
	w.s.mu.Unlock()
	return nil
}

// TestAsyncOperationsBoundedOnOneAssociation: a client that proposes an Asynchronous
// Operations Window of 8 to an SCP allowing 3 is answered with 3 (and invokes 1), and
// when it sends 6 C-STOREs back to back no more than 3 wait for their commit at once;
// all 6 are answered with success, each under its own Message ID. A client that does
// not propose the window gets none in the answer and one commit at a time.
func TestAsyncOperationsBoundedOnOneAssociation(t *testing.T) {
	for _, c := range []struct {
		name     string
		proposed *dimse.AsyncWindow
		answered *dimse.AsyncWindow
		most     int
	}{
		{"window 8 proposed, 3 allowed", &dimse.AsyncWindow{Invoked: 8, Performed: 1}, &dimse.AsyncWindow{Invoked: 1, Performed: 3}, 3},
		{"no limit proposed", &dimse.AsyncWindow{Invoked: 0, Performed: 0}, &dimse.AsyncWindow{Invoked: 1, Performed: 3}, 3},
		{"window 2 proposed", &dimse.AsyncWindow{Invoked: 2, Performed: 1}, &dimse.AsyncWindow{Invoked: 1, Performed: 2}, 2},
		{"no window proposed", nil, nil, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			sink := &heldSink{release: make(chan struct{})}
			addr := serveSink(t, dimse.SCPConfig{MaxOperations: 3}, sink)
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			rq := &dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: "ASYNC", ApplicationContext: dicom.ApplicationContextName,
				MaxPDU: 16384, AsyncWindow: c.proposed, Contexts: []dimse.PresentationContext{
					{ID: 1, AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}}}}
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			nc.Write(rq.Encode())
			r := dimse.NewReader(bufio.NewReader(nc), 1<<20)
			p, err := r.Read()
			if err != nil {
				t.Fatal(err)
			}
			ac, ok := p.(*dimse.AssociateAC)
			if !ok {
				t.Fatalf("answer %T", p)
			}
			if fmt.Sprint(ac.AsyncWindow) != fmt.Sprint(c.answered) {
				t.Fatalf("answered window %+v, want %+v", ac.AsyncWindow, c.answered)
			}
			const n = 6
			go func() {
				for i := 1; i <= n; i++ {
					sop := fmt.Sprintf("2.25.77.%d", i)
					cmd := (&dimse.Command{Field: dimse.CStoreRQ, AffectedSOPClassUID: dicom.CTImageStorage, AffectedSOPInstanceUID: sop, MessageID: uint16(i)}).Encode()
					nc.Write(pdata(1, true, cmd))
					nc.Write(pdata(1, false, phantom.Dataset(phantom.Spec{SOPInstanceUID: sop, Rows: 2, Columns: 2})))
				}
			}()
			// Release one commit each time the SCP holds as many as it may.
			go func() {
				for i := 0; i < n; i++ {
					if err := wait.Until(10*time.Second, func() bool { return sink.waiting() >= min(c.most, n-i) }); err != nil {
						return
					}
					sink.release <- struct{}{}
				}
			}()
			answered := map[uint16]bool{}
			for len(answered) < n {
				p, err := r.Read()
				if err != nil {
					t.Fatalf("after %d responses: %v", len(answered), err)
				}
				pd, ok := p.(*dimse.PData)
				if !ok {
					t.Fatalf("got %T", p)
				}
				for _, v := range pd.PDVs {
					rsp, err := dimse.DecodeCommand(v.Data)
					if err != nil || rsp.Field != dimse.CStoreRSP || rsp.Status != dimse.StatusSuccess {
						t.Fatalf("response %+v (%v)", rsp, err)
					}
					if answered[rsp.RespondedTo] {
						t.Fatalf("message %d answered twice", rsp.RespondedTo)
					}
					answered[rsp.RespondedTo] = true
				}
			}
			sink.mu.Lock()
			most := sink.most
			sink.mu.Unlock()
			if most != c.most {
				t.Errorf("at most %d commits waited at once, want %d", most, c.most)
			}
		})
	}
}

// serveSink runs an SCP storing into sink on loopback until the test ends.
func serveSink(t *testing.T, cfg dimse.SCPConfig, sink dicom.Sink) string {
	t.Helper()
	scp, err := dimse.NewSCP(cfg, sink, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- scp.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestAsyncOperationsOwnSCU: DCMTK's storescu never proposes asynchronous operations
// (it has no option for them), so our own SCU does: proposing a window of 4 to the box,
// it keeps 4 C-STOREs outstanding, every instance is answered with success and is in
// the spool with the bytes sent; a window of 1 proposes nothing.
func TestAsyncOperationsOwnSCU(t *testing.T) {
	b := startBox(t, dimse.SCPConfig{}, spool.Config{})
	src := t.TempDir()
	var files []dicom.File
	for i := 0; i < 40; i++ {
		p := writeFile(t, src, fmt.Sprintf("%02d.dcm", i), phantom.File(phantom.Spec{StudyUID: "2.25.78",
			SOPInstanceUID: phantom.UID("2.25.78", i), Rows: 64, Columns: 64, Fill: byte(i), DefinedLengths: true}))
		f, err := dicom.OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	for _, window := range []int{4, 1} {
		as, err := dimse.Dial(context.Background(), b.addr, "ASYNCSCU", "LIFELINE", dimse.ContextsFor(files), dimse.SCUOptions{AsyncOperations: window})
		if err != nil {
			t.Fatal(err)
		}
		if as.Window() != window {
			t.Errorf("window %d agreed, want %d", as.Window(), window)
		}
		ok := 0
		if err := as.StoreAll(context.Background(), files, func(f dicom.File, status uint16) {
			if status == dimse.StatusSuccess {
				ok++
			}
		}); err != nil {
			t.Fatal(err)
		}
		if err := as.Release(); err != nil {
			t.Fatal(err)
		}
		if ok != len(files) {
			t.Fatalf("window %d: %d of %d answered with success", window, ok, len(files))
		}
	}
	for _, f := range files {
		in, err := b.spool.Instance(f.Meta.SOPInstanceUID)
		if err != nil {
			t.Fatalf("%s acknowledged but not in the spool: %v", f.Meta.SOPInstanceUID, err)
		}
		sent, _ := datasetOf(t, f.Path)
		got, _ := datasetOf(t, in.Path)
		if string(sent) != string(got) {
			t.Errorf("%s stored differs from what was sent", filepath.Base(f.Path))
		}
	}
}
