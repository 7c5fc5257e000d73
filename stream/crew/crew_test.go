package crew

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/wait"
	"lifeline/stream/vitals"
)

// fakeLink is the box's control channel as the SFU offers it: up or down.
type fakeLink struct {
	mu   sync.Mutex
	up   bool
	sent []vitals.Message
}

func (l *fakeLink) send(device string, data []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up {
		return errors.New("not publishing")
	}
	m, err := vitals.Decode(data)
	if err != nil {
		return err
	}
	l.sent = append(l.sent, m)
	return nil
}

func (l *fakeLink) received() []vitals.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]vitals.Message(nil), l.sent...)
}

func openStore(t *testing.T, path string) *durable.Store {
	t.Helper()
	s, err := durable.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGuidanceIsKeptResentAndConfirmed: a message to a box that is not connected is
// kept and reaches the box once it is; it stops being sent once the box confirms it;
// receipts mark it delivered and read; and after a hub restart the record and the
// sequence number continue where they were.
func TestGuidanceIsKeptResentAndConfirmed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vitals.db")
	store := openStore(t, path)
	link := &fakeLink{}
	c, err := New(Config{Store: store, Send: link.send, ResendEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	n, err := c.Send("amb-07", "Dr Li", vitals.TypeText, "Give aspirin 300 mg")
	if err != nil {
		t.Fatal(err)
	}
	if n.Seq != 1 || n.ID != "m-1" {
		t.Fatalf("first note: %+v", n)
	}
	if got := link.received(); len(got) != 0 {
		t.Fatalf("sent while the box was away: %v", got)
	}
	link.mu.Lock()
	link.up = true
	link.mu.Unlock()
	wait.For(t, 5*time.Second, "the kept message to reach the box", func() bool { return len(link.received()) > 0 })
	got := link.received()[0]
	if got.Type != vitals.TypeText || got.Seq != 1 || got.Text != "Give aspirin 300 mg" || got.From != "Dr Li" {
		t.Fatalf("the box got %+v", got)
	}
	at := time.Now().UTC()
	if err := c.FromBox("amb-07", vitals.Message{Type: vitals.TypeReceipt, Ref: 1, State: "delivered", BoxTime: at}); err != nil {
		t.Fatal(err)
	}
	settled := len(link.received())
	time.Sleep(50 * time.Millisecond) // five resend periods: nothing more may go out
	if len(link.received()) != settled {
		t.Fatalf("a delivered message was sent again: %d then %d", settled, len(link.received()))
	}
	if err := c.FromBox("amb-07", vitals.Message{Type: vitals.TypeReceipt, Ref: 1, State: "read", BoxTime: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	b, _ := c.Box("amb-07")
	if len(b.Notes) != 1 || !b.Notes[0].Delivered.Equal(at) || !b.Notes[0].Read.Equal(at.Add(time.Second)) {
		t.Fatalf("notes after receipts: %+v", b.Notes)
	}
	cancel()
	<-done
	store.Close()

	store = openStore(t, path)
	defer store.Close()
	c, err = New(Config{Store: store, Send: link.send})
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := c.Box("amb-07"); !ok || len(b.Notes) != 1 || b.Notes[0].Read.IsZero() {
		t.Fatalf("after restart: %+v", b)
	}
	n, err = c.Send("amb-07", "Dr Li", vitals.TypeECGRequest, "")
	if err != nil {
		t.Fatal(err)
	}
	if n.Seq != 2 {
		t.Fatalf("after a restart the next seq is %d, want 2", n.Seq)
	}
	if _, err := c.Send("amb-07", "Dr Li", vitals.TypeText, string(make([]byte, 5000))); !errors.Is(err, ErrTooLong) {
		t.Fatalf("a 5000-byte text: %v", err)
	}
}

// TestCardAndECGReports: the newest card wins whatever order cards arrive in, and an
// ECG's reports update one acquisition from acquiring to queued.
func TestCardAndECGReports(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "vitals.db"))
	defer store.Close()
	c, err := New(Config{Store: store, Send: (&fakeLink{}).send})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 2, 4, 30, 0, 0, time.UTC)
	newer := &vitals.PatientCard{Suspected: []string{"stemi"}, Updated: t0.Add(time.Minute)}
	older := &vitals.PatientCard{Suspected: []string{"sepsis"}, Updated: t0}
	for _, card := range []*vitals.PatientCard{newer, older} {
		if err := c.FromBox("amb-07", vitals.Message{Type: vitals.TypePatient, Card: card, BoxTime: card.Updated}); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Card("amb-07"); got == nil || got.Suspected[0] != "stemi" {
		t.Fatalf("card: %+v, want the newer (stemi)", got)
	}
	reports := []vitals.Message{
		{Type: vitals.TypeECG, Ref: 2, State: vitals.ECGAcquiring, BoxTime: t0},
		{Type: vitals.TypeECG, Ref: 2, State: vitals.ECGQueued, SOP: "1.2.3.4", Study: "1.2.3", BoxTime: t0.Add(11 * time.Second)},
		{Type: vitals.TypeECG, State: vitals.ECGAcquiring, BoxTime: t0.Add(time.Minute)},
	}
	for _, m := range reports {
		if err := c.FromBox("amb-07", m); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := c.Box("amb-07")
	if len(b.ECGs) != 2 || b.ECGs[0].State != vitals.ECGQueued || b.ECGs[0].SOP != "1.2.3.4" || !b.ECGs[0].Started.Equal(t0) {
		t.Fatalf("ECGs: %+v", b.ECGs)
	}
}
