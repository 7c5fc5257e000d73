package dimse_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/dicom"
	"lifeline/dicom/dimse"
	"lifeline/dicom/phantom"
	"lifeline/dicom/spool"
	"lifeline/internal/peers"
	"lifeline/internal/wait"
)

// squatter is an association that only ever sends C-ECHO, as a keep-alive, to hold
// one of the box's association slots.
type squatter struct {
	c     net.Conn
	ended chan time.Time // when the box ended it
}

// squat opens an association from the loopback address src as callingAE and echoes
// every interval until the box ends it. It returns the box's A-ASSOCIATE-RJ instead
// when the box refuses.
func squat(t *testing.T, b *box, src, callingAE string, interval time.Duration) (*squatter, *dimse.AssociateRJ) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	rq := &dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: callingAE, ApplicationContext: dicom.ApplicationContextName,
		MaxPDU: 16384, Contexts: []dimse.PresentationContext{{ID: 1, AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}}}}}
	c.Write(rq.Encode())
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := dimse.NewReader(c, 1<<20).Read()
	if err != nil {
		t.Fatalf("association from %s as %s: %v", src, callingAE, err)
	}
	switch p := p.(type) {
	case *dimse.AssociateRJ:
		c.Close()
		rj := *p
		return nil, &rj
	case *dimse.AssociateAC:
	default:
		t.Fatalf("got %T, want A-ASSOCIATE-AC or -RJ", p)
	}
	s := &squatter{c: c, ended: make(chan time.Time, 1)}
	go func() {
		defer c.Close()
		r := dimse.NewReader(c, 1<<20)
		tick := time.NewTicker(interval) // the keep-alive's own period
		defer tick.Stop()
		for id := uint16(1); ; id++ {
			echo := (&dimse.Command{Field: dimse.CEchoRQ, AffectedSOPClassUID: dicom.VerificationSOPClass, MessageID: id, DataSetType: 0x0101}).Encode()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(pdata(1, true, echo)); err != nil {
				s.ended <- time.Now()
				return
			}
			if p, err := r.Read(); err != nil || func() bool { _, ok := p.(*dimse.PData); return !ok }() {
				s.ended <- time.Now()
				return
			}
			<-tick.C
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s, nil
}

func storescuFile(t *testing.T, sop string) string {
	return writeFile(t, t.TempDir(), "ct.dcm", phantom.File(phantom.Spec{SOPInstanceUID: sop, StudyUID: "2.25.500", DefinedLengths: true}))
}

// TestKeepAliveSquattersCannotHoldEverySlot replays issue 16 item 6: associations that
// only send C-ECHO keep-alives try to hold every slot (8). One address gets at most 4,
// one calling AE title at most 4 from any number of addresses, and a real modality
// (DCMTK's storescu) is served beside them; only the two together fill the box, and
// then storescu is told why (a transient rejection) rather than left hanging.
func TestKeepAliveSquattersCannotHoldEverySlot(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	b := startBox(t, dimse.SCPConfig{MaxAssociations: 8, StoreIdleLimit: time.Hour}, spool.Config{})
	admitted, refused := 0, 0
	for i := 0; i < 8; i++ {
		if _, rj := squat(t, b, "127.0.0.2", fmt.Sprintf("SQUAT%d", i), 50*time.Millisecond); rj != nil {
			if rj.Result != 2 {
				t.Errorf("refusal %+v is not transient", rj)
			}
			refused++
		} else {
			admitted++
		}
	}
	if admitted != 4 || refused != 4 {
		t.Fatalf("one address got %d associations (%d refused), want 4 (4)", admitted, refused)
	}
	run(t, storescu, "-aec", "LIFELINE", "127.0.0.1", b.port, storescuFile(t, "2.25.501"))

	admitted, refused = 0, 0
	for i := 0; i < 8; i++ {
		if _, rj := squat(t, b, fmt.Sprintf("127.0.1.%d", i+1), "SQUAT", 50*time.Millisecond); rj != nil {
			refused++
		} else {
			admitted++
		}
	}
	if admitted != 4 || refused != 4 {
		t.Fatalf("one calling AE from 8 addresses got %d associations (%d refused), want 4 (4)", admitted, refused)
	}
	out, err := exec.Command(storescu, "-aec", "LIFELINE", "127.0.0.1", b.port, storescuFile(t, "2.25.502")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Association Rejected") {
		t.Errorf("storescu with every slot held: %v\n%s", err, out)
	}
	if got := counter(t, b.reg, "lifeline_dicom_refused_total", "address_limit"); got != 4 {
		t.Errorf("address_limit refusals = %v, want 4", got)
	}
	if got := counter(t, b.reg, "lifeline_dicom_refused_total", "calling_ae_limit"); got != 4 {
		t.Errorf("calling_ae_limit refusals = %v, want 4", got)
	}
	if got := counter(t, b.reg, "lifeline_dicom_refused_total", "association_limit"); got != 1 {
		t.Errorf("association_limit refusals = %v, want 1 (storescu)", got)
	}
	st := b.scp.Status()
	if st.ActiveAssociations != 8 || st.OpenConnections != 8 || st.Refused["address_limit"] != 4 {
		t.Errorf("status: %d associations, %d connections, refused %v", st.ActiveAssociations, st.OpenConnections, st.Refused)
	}
}

// TestKeepAliveDoesNotHoldASlot: associations that echo every 50 ms but store nothing
// are ended after the store-idle limit, so the modality that was refused gets in.
func TestKeepAliveDoesNotHoldASlot(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	const limit = 700 * time.Millisecond
	b := startBox(t, dimse.SCPConfig{MaxAssociations: 2, MaxConnectionsPerAddress: 2, StoreIdleLimit: limit}, spool.Config{})
	start := time.Now()
	var squatters []*squatter
	for i := 0; i < 2; i++ {
		s, rj := squat(t, b, "127.0.0.2", fmt.Sprintf("SQUAT%d", i), 50*time.Millisecond)
		if rj != nil {
			t.Fatalf("squatter %d refused: %+v", i, rj)
		}
		squatters = append(squatters, s)
	}
	for i, s := range squatters {
		select {
		case end := <-s.ended:
			if d := end.Sub(start); d < limit {
				t.Errorf("squatter %d ended after %v, before the store-idle limit %v", i, d, limit)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("squatter %d echoing every 50 ms still holds its slot after 30 s", i)
		}
	}
	waitLog(t, b, "it stored nothing for too long")
	wait.For(t, 10*time.Second, "storescu to get a slot", func() bool {
		return exec.Command(storescu, "-aec", "LIFELINE", "127.0.0.1", b.port, storescuFile(t, "2.25.503")).Run() == nil
	})
	if got := counter(t, b.reg, "lifeline_dicom_failures_total", "store_idle"); got != 2 {
		t.Errorf("store_idle failures = %v, want 2", got)
	}
}

// TestAssociationLifeIsCapped: an association storing steadily is ended at its maximum
// life, after the instance in progress; every instance acknowledged is in the spool.
func TestAssociationLifeIsCapped(t *testing.T) {
	const life = 800 * time.Millisecond
	b := startBox(t, dimse.SCPConfig{MaxLife: life}, spool.Config{})
	ctx := context.Background()
	start := time.Now()
	a, err := dimse.Dial(ctx, b.addr, "CT1", "LIFELINE", ctContexts, dimse.SCUOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	var acked []string
	var ended time.Duration
	var mu sync.Mutex
	wait.For(t, 30*time.Second, "the box to end the association", func() bool {
		mu.Lock()
		defer mu.Unlock()
		sop := fmt.Sprintf("2.25.600.%d", len(acked)+1)
		data := phantom.Dataset(phantom.Spec{SOPInstanceUID: sop, StudyUID: "2.25.600"})
		st, err := a.StoreDataset(ctx, dicom.CTImageStorage, sop, dicom.ExplicitVRLittleEndian, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			ended = time.Since(start)
			return true
		}
		if st == 0 {
			acked = append(acked, sop)
		}
		return false
	})
	if ended < life {
		t.Errorf("association ended after %v, before its life of %v", ended, life)
	}
	waitLog(t, b, "it reached its maximum life")
	if got := counter(t, b.reg, "lifeline_dicom_failures_total", "association_life"); got != 1 {
		t.Errorf("association_life failures = %v, want 1", got)
	}
	for _, sop := range acked {
		if _, err := b.spool.Instance(sop); err != nil {
			t.Errorf("acknowledged %s is not in the spool: %v", sop, err)
		}
	}
	if len(acked) == 0 {
		t.Errorf("nothing stored before the cap")
	}
	mustEcho(t, b)
}

// TestIdleAssociationsMakeRoomForAModality: keep-alive squatters from two addresses
// and two AE titles hold both places (within every per-sender limit). Once they have
// stored nothing for DisplaceIdleAfter, storescu's association displaces one of them
// and is served; associations receiving an instance, however slowly, are never
// displaced.
func TestIdleAssociationsMakeRoomForAModality(t *testing.T) {
	storescu := peers.Need(t, "storescu")[0]
	const idle = 400 * time.Millisecond
	b := startBox(t, dimse.SCPConfig{MaxAssociations: 2, MaxConnectionsPerAddress: 2, MaxAssociationsPerAE: 1,
		StoreIdleLimit: time.Hour, DisplaceIdleAfter: idle}, spool.Config{})
	start := time.Now()

	// Two associations each receiving one instance slowly (a PDV every 50 ms, for
	// several idle thresholds) hold both places: an instance in progress is never cut.
	f := storescuFile(t, "2.25.721")
	var wg sync.WaitGroup
	for i, src := range []string{"127.0.0.4", "127.0.0.5"} {
		c := rawAssociateFrom(t, b, src, fmt.Sprintf("SLOW%d", i))
		sop := fmt.Sprintf("2.25.720.%d", i)
		cmd := (&dimse.Command{Field: dimse.CStoreRQ, AffectedSOPClassUID: dicom.CTImageStorage, AffectedSOPInstanceUID: sop, MessageID: 1}).Encode()
		data := phantom.Dataset(phantom.Spec{SOPInstanceUID: sop, StudyUID: "2.25.720"})
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Write(pdata(1, true, cmd))
			tick := time.NewTicker(50 * time.Millisecond) // the slow modality's pace
			defer tick.Stop()
			const pieces = 40
			for k := 0; k < pieces; k++ {
				piece := data[k*len(data)/pieces : (k+1)*len(data)/pieces]
				last := k == pieces-1
				c.Write(pdvPiece(1, last, piece))
				<-tick.C
			}
			if rsp := readResponse(t, c); rsp.Status != dimse.StatusSuccess {
				t.Errorf("slow instance %s: status 0x%04x", sop, rsp.Status)
			}
			c.Write([]byte{0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0})
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			dimse.NewReader(c, 1<<20).Read() // A-RELEASE-RP
			c.Close()
		}()
	}
	wait.For(t, 10*time.Second, "the slow instances to be in progress past the idle threshold", func() bool {
		return b.scp.Status().ActiveAssociations == 2 && time.Since(start) > 2*idle
	})
	if out, err := exec.Command(storescu, "-aec", "LIFELINE", "127.0.0.1", b.port, f).CombinedOutput(); err == nil {
		t.Errorf("storescu displaced an association that was receiving an instance:\n%s", out)
	}
	wg.Wait()
	for i := 0; i < 2; i++ {
		if _, err := b.spool.Instance(fmt.Sprintf("2.25.720.%d", i)); err != nil {
			t.Errorf("slow instance %d not stored: %v", i, err)
		}
	}
	wait.For(t, 5*time.Second, "the slow associations to end", func() bool { return b.scp.Status().ActiveAssociations == 0 })

	var squatters []*squatter
	for i, src := range []string{"127.0.0.2", "127.0.0.3"} {
		s, rj := squat(t, b, src, fmt.Sprintf("SQUAT%d", i), 50*time.Millisecond)
		if rj != nil {
			t.Fatalf("squatter %d refused: %+v", i, rj)
		}
		squatters = append(squatters, s)
	}
	squatStart := time.Now()
	wait.For(t, 10*time.Second, "storescu to displace an idle squatter", func() bool {
		return exec.Command(storescu, "-aec", "LIFELINE", "127.0.0.1", b.port, f).Run() == nil
	})
	if d := time.Since(squatStart); d < idle {
		t.Errorf("storescu got in after %v, before the squatters were idle for %v", d, idle)
	}
	wait.For(t, 5*time.Second, "a displaced squatter to see its association end", func() bool {
		for _, s := range squatters {
			if len(s.ended) > 0 {
				return true
			}
		}
		return false
	})
	waitLog(t, b, "it was idle and a new association needed its place")
	if got := counter(t, b.reg, "lifeline_dicom_refused_total", "idle_association_displaced"); got < 1 {
		t.Errorf("displacements = %v, want at least 1", got)
	}
	if _, err := b.spool.Instance("2.25.721"); err != nil {
		t.Errorf("storescu's instance is not in the spool: %v", err)
	}
}

// rawAssociateFrom opens an association with one CT context from the loopback
// address src.
func rawAssociateFrom(t *testing.T, b *box, src, callingAE string) net.Conn {
	t.Helper()
	c := dialFrom(t, b, src)
	rq := &dimse.AssociateRQ{Associate: dimse.Associate{CalledAE: "LIFELINE", CallingAE: callingAE, ApplicationContext: dicom.ApplicationContextName,
		MaxPDU: 16384, Contexts: []dimse.PresentationContext{{ID: 1, AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}}}}
	c.Write(rq.Encode())
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := dimse.NewReader(c, 1<<20).Read()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*dimse.AssociateAC); !ok {
		t.Fatalf("got %T, want A-ASSOCIATE-AC", p)
	}
	return c
}

// pdvPiece is a P-DATA-TF with one data set fragment, the last one when last.
func pdvPiece(ctx byte, last bool, b []byte) []byte {
	p := pdata(ctx, false, b)
	if !last {
		p[11] &^= 2
	}
	return p
}
