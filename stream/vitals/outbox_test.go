package vitals

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/wait"
	"lifeline/telemetry"
)

func openStore(t testing.TB, name string) *durable.Store {
	t.Helper()
	s, err := durable.Open(filepath.Join(t.TempDir(), name), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// box is an Outbox running on its own bus and store.
type box struct {
	bus    *telemetry.Bus
	out    *Outbox
	cancel context.CancelFunc
	done   chan error
}

func startBox(t testing.TB, store *durable.Store, cfg OutboxConfig) *box {
	t.Helper()
	b := &box{bus: telemetry.NewBus(nil), done: make(chan error, 1)}
	cfg.Store, cfg.Bus, cfg.Device = store, b.bus, "amb-07"
	if cfg.FlushEvery == 0 {
		cfg.FlushEvery = 20 * time.Millisecond
	}
	if cfg.RetryEvery == 0 {
		cfg.RetryEvery = 10 * time.Millisecond
	}
	var err error
	if b.out, err = NewOutbox(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.done <- b.out.Run(ctx) }()
	t.Cleanup(func() { b.stop(t) })
	return b
}

func (b *box) stop(t testing.TB) {
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	if err := <-b.done; err != nil {
		t.Errorf("outbox run: %v", err)
	}
}

// publish puts d of the patient's monitoring on the bus and returns how many
// reliable messages it makes.
func (b *box) publish(p *patient, d time.Duration) (reliable int) {
	for range d / (100 * time.Millisecond) {
		for _, ev := range p.next() {
			if ev.Kind() != telemetry.KindWave {
				reliable++
			}
			b.bus.Publish("monitor0", ev)
		}
	}
	return reliable
}

// waitBox waits for cond on the box's stats, and on timeout says where they stood.
func waitBox(t testing.TB, b *box, what string, cond func(OutboxStats) bool) {
	t.Helper()
	if err := wait.Until(5*time.Second, func() bool { return cond(b.out.Stats()) }); err != nil {
		t.Fatalf("timed out waiting for %s; box %+v", what, b.out.Stats())
	}
}

// link stands in for the publisher's data channels and the hub behind them: what is
// sent reaches an Archive, whose acks come back while the link is up. cut makes the
// link swallow what is sent without error, as a channel does with messages in flight
// when the radio drops.
type link struct {
	t       testing.TB
	archive *Archive
	out     *Outbox

	mu    sync.Mutex
	up    bool
	cut   bool
	waves []Message
	fresh []uint64 // reliable seqs new to the hub, in arrival order
}

func newLink(t testing.TB, store *durable.Store, out *Outbox) *link {
	l := &link{t: t, out: out}
	a, err := NewArchive(ArchiveConfig{History: NewBoltHistory(store, HistoryBounds{}), FlushEvery: 20 * time.Millisecond,
		SendAck: func(device string, ack []byte) {
			l.mu.Lock()
			up, out := l.up && !l.cut, l.out
			l.mu.Unlock()
			if up {
				if err := out.HandleFromHub(ack); err != nil {
					t.Errorf("box refused the hub's ack %s: %v", ack, err)
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	l.archive = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

var errLinkDown = errors.New("link down")

func (l *link) send(label string) func([]byte) error {
	return func(data []byte) error {
		l.mu.Lock()
		up, cut := l.up, l.cut
		l.mu.Unlock()
		switch {
		case !up:
			return errLinkDown
		case cut:
			return nil
		}
		fresh, err := l.archive.Receive("amb-07", label, data)
		if err != nil {
			l.t.Errorf("hub refused %s: %v", data, err)
		}
		if label == LabelReliable && fresh {
			m, _ := Decode(data)
			l.mu.Lock()
			l.fresh = append(l.fresh, m.Seq)
			l.mu.Unlock()
		}
		if label == LabelWave && fresh {
			m, _ := Decode(data)
			l.mu.Lock()
			l.waves = append(l.waves, m)
			l.mu.Unlock()
		}
		return nil
	}
}

func (l *link) connect() {
	l.mu.Lock()
	l.up, l.cut = true, false
	out := l.out
	l.mu.Unlock()
	out.Attach(l.send(LabelReliable), l.send(LabelWave))
}

// replaceBox points the link at a restarted box.
func (l *link) replaceBox(out *Outbox) {
	l.mu.Lock()
	l.out = out
	l.mu.Unlock()
}

// drop cuts the radio: messages still "sent" are lost; the publisher notices later.
func (l *link) drop() {
	l.mu.Lock()
	l.cut = true
	l.mu.Unlock()
}

func (l *link) disconnect() {
	l.mu.Lock()
	l.up = false
	out := l.out
	l.mu.Unlock()
	out.Detach()
}

// history returns the reliable messages the hub holds, in order.
func (l *link) history(t testing.TB) []Message {
	var out []Message
	err := l.archive.cfg.History.Read(HistoryQuery{Device: "amb-07", Channel: LabelReliable}, func(r Record) bool {
		m, err := Decode(r.Data)
		if err != nil {
			t.Fatalf("stored message unreadable: %v", err)
		}
		out = append(out, m)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReplayAfterReconnectLosesAndRepeatsNothing(t *testing.T) {
	b := startBox(t, openStore(t, "box.db"), OutboxConfig{})
	l := newLink(t, openStore(t, "hub.db"), b.out)
	p := newPatient(t0)
	l.connect()
	total := b.publish(p, 3*time.Second)
	waitBox(t, b, "the hub to acknowledge the first 3 s", func(s OutboxStats) bool {
		return s.LastSeq == uint64(total) && s.Acked == s.LastSeq
	})

	// The radio drops: what is sent now is lost in flight; then the publisher notices.
	l.drop()
	total += b.publish(p, 2*time.Second)
	wait.For(t, 5*time.Second, "the box to number what it read", func() bool { return b.out.Stats().LastSeq == uint64(total) })
	l.disconnect()
	total += b.publish(p, 2*time.Second) // a tunnel: nothing goes out
	wait.For(t, 5*time.Second, "the box to number what it read", func() bool { return b.out.Stats().LastSeq == uint64(total) })
	wavesBefore := len(l.waves)

	l.connect()
	total += b.publish(p, 3*time.Second)
	if err := wait.Until(5*time.Second, func() bool {
		s := b.out.Stats()
		return s.LastSeq == uint64(total) && s.Acked == s.LastSeq
	}); err != nil {
		t.Fatalf("the hub did not acknowledge everything after the reconnect: %d made, box %+v, hub holds %d", total, b.out.Stats(), len(l.history(t)))
	}

	got := l.history(t)
	if len(got) != total {
		t.Fatalf("hub holds %d reliable messages, the box sent %d", len(got), total)
	}
	for i, m := range got {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d: lost or repeated", i, m.Seq)
		}
	}
	l.mu.Lock()
	for i, seq := range l.fresh {
		if seq != uint64(i+1) {
			t.Fatalf("arrival %d was seq %d: the replay is out of order", i, seq)
		}
	}
	l.mu.Unlock()
	checkGapAfterReconnect(t, l.waves[wavesBefore:])
}

// checkGapAfterReconnect checks that the first chunk of every signal after the link
// returned says gap, and none after it does (the patient's signals are continuous).
func checkGapAfterReconnect(t *testing.T, waves []Message) {
	t.Helper()
	seen := map[uint32]bool{}
	for _, m := range waves {
		if m.Gap != !seen[m.Code] {
			t.Fatalf("%s seq %d: gap %v; want the gap flag exactly on the first chunk after the reconnect", m.MDC, m.Seq, m.Gap)
		}
		seen[m.Code] = true
	}
	if len(seen) != 14 {
		t.Fatalf("%d signals after the reconnect, want 14", len(seen))
	}
}

func TestRingKeepsTheNewestWithinItsBound(t *testing.T) {
	store := openStore(t, "box.db")
	b := startBox(t, store, OutboxConfig{RingMessages: 40})
	p := newPatient(t0)
	total := b.publish(p, 10*time.Second) // no hub: everything waits in the ring
	waitBox(t, b, "the ring to drop the oldest", func(s OutboxStats) bool {
		return s.LastSeq == uint64(total) && s.Dropped == uint64(total-40)
	})
	if total < 60 {
		t.Fatalf("only %d reliable messages: the bound was not exercised", total)
	}
	l := newLink(t, openStore(t, "hub.db"), b.out)
	l.connect()
	wait.For(t, 5*time.Second, "the replay to be acknowledged", func() bool { return b.out.Stats().Acked == uint64(total) })
	got := l.history(t)
	if len(got) != 40 || got[0].Seq != uint64(total-39) || got[39].Seq != uint64(total) {
		t.Fatalf("hub got %d messages from seq %d: want the newest 40 ending at %d", len(got), got[0].Seq, total)
	}
}

func TestRestartResumesFromTheAckAboveEverySentSeq(t *testing.T) {
	store := openStore(t, "box.db")
	hub := openStore(t, "hub.db")
	b := startBox(t, store, OutboxConfig{})
	epoch := b.out.Epoch()
	l := newLink(t, hub, b.out)
	l.connect()
	p := newPatient(t0)
	first := b.publish(p, 2*time.Second)
	wait.For(t, 5*time.Second, "acks", func() bool { return b.out.Stats().Acked == uint64(first) })
	l.disconnect()
	second := b.publish(p, 2*time.Second)
	wait.For(t, 5*time.Second, "numbering", func() bool { return b.out.Stats().LastSeq == uint64(first+second) })
	b.stop(t)

	b2 := startBox(t, store, OutboxConfig{})
	if b2.out.Epoch() != epoch {
		t.Fatalf("epoch changed across a restart: %s then %s", epoch, b2.out.Epoch())
	}
	l.replaceBox(b2.out)
	l.connect()
	third := b2.publish(p, 2*time.Second)
	if err := wait.Until(5*time.Second, func() bool {
		s := b2.out.Stats()
		return s.Acked == s.LastSeq && len(l.history(t)) == first+second+third
	}); err != nil {
		t.Fatalf("hub holds %d messages, the box made %d; box %+v", len(l.history(t)), first+second+third, b2.out.Stats())
	}
	got := l.history(t)
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("seq %d after %d", got[i].Seq, got[i-1].Seq)
		}
	}
	// After the restart the box skips to above its durable reservation.
	if s := got[first+second].Seq; s <= uint64(first+second) || s > uint64(first+second)+2*reserveStep {
		t.Fatalf("first seq after the restart is %d", s)
	}
}

func TestControlReachesTheCrewOnceAndIsReceipted(t *testing.T) {
	var mu sync.Mutex
	var got []Control
	b := startBox(t, openStore(t, "box.db"), OutboxConfig{OnControl: func(c Control) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	}})
	l := newLink(t, openStore(t, "hub.db"), b.out)
	l.connect()
	text := []byte(`{"v":1,"type":"text","seq":1,"id":"m-1","from":"Dr Li","text":"12-lead please","hub_time":"2026-12-02T04:31:00Z"}`)
	for range 2 { // sent again after a reconnect
		if err := b.out.HandleFromHub(text); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.out.ConfirmRead(1); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "two receipts at the hub", func() bool { return len(l.history(t)) == 2 })
	h := l.history(t)
	if h[0].Type != TypeReceipt || h[0].Ref != 1 || h[0].State != "delivered" || h[1].State != "read" {
		t.Fatalf("receipts %+v", h)
	}
	mu.Lock()
	if len(got) != 1 || got[0].Text != "12-lead please" || got[0].From != "Dr Li" || got[0].Type != TypeText {
		t.Fatalf("crew got %+v, want the message once", got)
	}
	mu.Unlock()

	for _, bad := range []string{
		`{"v":1,"type":"ack","seq":1,"epoch":"someone-else"}`,
		`{"v":1,"type":"ack","seq":999999,"epoch":"` + b.out.Epoch() + `"}`,
		`{"v":1,"type":"numeric","seq":1,"epoch":"e","device":"d","code":1,"box_time":"2026-12-02T04:30:00Z"}`,
		`{"v":3,"type":"text","seq":2}`,
	} {
		if err := b.out.HandleFromHub([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("box took %s from the hub: %v", bad, err)
		}
	}
}

// waveTap records the wave chunks an Outbox sends and can refuse or hold them.
type waveTap struct {
	mu     sync.Mutex
	got    []Message
	refuse func(Message) bool
	hold   chan struct{} // when set, the next send waits until it is closed
}

func (w *waveTap) send(data []byte) error {
	m, err := Decode(data)
	if err != nil {
		return err
	}
	w.mu.Lock()
	hold, refuse := w.hold, w.refuse
	w.hold = nil
	w.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if refuse != nil && refuse(m) {
		return errors.New("send buffer full")
	}
	w.mu.Lock()
	w.got = append(w.got, m)
	w.mu.Unlock()
	return nil
}

func (w *waveTap) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.got)
}

func TestAChunkThatCannotGoMarksTheNextOfItsSignal(t *testing.T) {
	b := startBox(t, openStore(t, "box.db"), OutboxConfig{})
	refused := 0
	tap := &waveTap{refuse: func(m Message) bool {
		if m.Code == uint32(telemetry.MDC_ECG_ELEC_POTL_V3) && m.Seq > 14*3 && refused == 0 {
			refused++
			return true
		}
		return false
	}}
	b.out.Attach(func([]byte) error { return nil }, tap.send)
	b.publish(newPatient(t0), time.Second)
	wait.For(t, 5*time.Second, "139 chunks", func() bool { return tap.count() == 139 })
	seen := map[uint32]bool{}
	lostV3 := false
	for _, m := range tap.got {
		wantGap := !seen[m.Code] || (m.Code == uint32(telemetry.MDC_ECG_ELEC_POTL_V3) && !lostV3 && m.Seq > 14*3)
		if m.Code == uint32(telemetry.MDC_ECG_ELEC_POTL_V3) && m.Seq > 14*3 {
			lostV3 = true
		}
		if m.Gap != wantGap {
			t.Fatalf("%s seq %d: gap %v, want %v", m.MDC, m.Seq, m.Gap, wantGap)
		}
		seen[m.Code] = true
	}
}

func TestBusDropsMarkEverySignal(t *testing.T) {
	store := openStore(t, "box.db")
	bus := telemetry.NewBus(nil)
	out, err := NewOutbox(OutboxConfig{Store: store, Bus: bus, Device: "amb-07", Buffer: 20})
	if err != nil {
		t.Fatal(err)
	}
	tap := &waveTap{}
	out.Attach(func([]byte) error { return nil }, tap.send)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out.Run(ctx) }()
	defer func() { cancel(); <-done }()

	p := newPatient(t0)
	publish := func() {
		for _, ev := range p.next() {
			if ev.Kind() == telemetry.KindWave {
				bus.Publish("monitor0", ev)
			}
		}
	}
	publish()
	wait.For(t, 5*time.Second, "the first 100 ms", func() bool { return tap.count() == 14 })
	gate := make(chan struct{})
	tap.mu.Lock()
	tap.hold = gate
	tap.mu.Unlock()
	publish() // the outbox takes the first chunk and is held sending it
	wait.For(t, 5*time.Second, "the outbox to be held", func() bool {
		tap.mu.Lock()
		defer tap.mu.Unlock()
		return tap.hold == nil
	})
	for range 5 { // 70 chunks into a buffer of 20: the bus drops the oldest
		publish()
	}
	close(gate)
	wait.For(t, 5*time.Second, "the buffered chunks", func() bool { return tap.count() == 14+1+20 })
	tap.mu.Lock()
	defer tap.mu.Unlock()
	if tap.got[14].Gap {
		t.Fatalf("the chunk sent before the drop says gap")
	}
	seen := map[uint32]bool{}
	for _, m := range tap.got[15:] {
		if m.Gap != !seen[m.Code] {
			t.Fatalf("%s seq %d after the bus dropped chunks: gap %v, want it on the first of each signal", m.MDC, m.Seq, m.Gap)
		}
		seen[m.Code] = true
	}
}

func TestAnOrderlyStopKeepsWhatTheBusStillHeld(t *testing.T) {
	store := openStore(t, "box.db")
	b := startBox(t, store, OutboxConfig{})
	total := b.publish(newPatient(t0), 20*time.Second)
	b.stop(t) // at once: most events are still in the bus buffer
	b2 := startBox(t, store, OutboxConfig{})
	l := newLink(t, openStore(t, "hub.db"), b2.out)
	l.connect()
	if err := wait.Until(5*time.Second, func() bool { return len(l.history(t)) == total }); err != nil {
		t.Fatalf("hub holds %d of the %d reliable messages published before the stop", len(l.history(t)), total)
	}
}

func TestAReplayAckMakesTheBoxSendTheRestAgainInOrder(t *testing.T) {
	b := startBox(t, openStore(t, "box.db"), OutboxConfig{})
	var mu sync.Mutex
	var sent []uint64
	b.out.OpenReliable(func(data []byte) error {
		m, err := Decode(data)
		if err != nil {
			return err
		}
		mu.Lock()
		sent = append(sent, m.Seq)
		mu.Unlock()
		return nil
	})
	total := b.publish(newPatient(t0), 2*time.Second)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(sent) }
	wait.For(t, 5*time.Second, "everything sent once", func() bool { return count() == total })
	ack := fmt.Sprintf(`{"v":1,"type":"ack","seq":3,"epoch":%q,"replay":true}`, b.out.Epoch())
	if err := b.out.HandleFromHub([]byte(ack)); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the rest sent again", func() bool { return count() == 2*total-3 })
	mu.Lock()
	defer mu.Unlock()
	for i, seq := range sent[total:] {
		if seq != uint64(4+i) {
			t.Fatalf("after the replay ack the box sent %v, want 4..%d in order", sent[total:], total)
		}
	}
}
