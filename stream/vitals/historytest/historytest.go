// Package historytest holds the behaviour every vitals.HistoryStore must have, as
// tests that run an Archive over it, so that each engine (BoltHistory, pghistory)
// is held to the same: every engine's tests call Run.
package historytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/stream/vitals"
)

// Opener makes an empty store's backing (a file, a database) for one test and returns
// a function that opens a HistoryStore on it with the given bounds. Each call of the
// returned function is another hub on the same data: a restarted hub, or a second hub
// sharing the database.
type Opener func(t *testing.T) func(vitals.HistoryBounds) vitals.HistoryStore

// Run runs every behaviour against the engine open makes.
func Run(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"DeduplicatesAndAcksOnlyWhatIsDurable", testDeduplicatesAndAcks},
		{"NewEpochIsANewSequenceAndSurvivesRestart", testNewEpochAndRestart},
		{"KeepsTheNewestWithinEachChannelsBound", testKeepsNewestWithinBound},
		{"RefusesWhenItCannotStoreAndAsksForTheRestAgain", testRefusesWhenItCannotStore},
		{"ReportsWhileCommitsFail", testReportsWhileCommitsFail},
		{"QueryBySeqTimeAndPage", testQueryBySeqTimeAndPage},
		{"StreamMovesBetweenHubs", testStreamMovesBetweenHubs},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
}

const device = "amb-07"

var t0 = time.Date(2026, 12, 2, 4, 30, 0, 123456789, time.UTC)

// NumericMsg is a box's SpO2 numeric with the given epoch and seq, as the box sends it.
func NumericMsg(t testing.TB, device, epoch string, seq uint64, at time.Time) []byte {
	t.Helper()
	v := 97.0
	m := vitals.Message{V: vitals.Version, Type: vitals.TypeNumeric, Seq: seq, Epoch: epoch, Device: device, Source: "monitor0",
		Code: 150456, MDC: "MDC_PULS_OXIM_SAT_O2", Label: "SpO2", Unit: "%", Value: &v, BoxTime: at}
	data, err := vitals.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// WaveMsg is a box's 100 ms chunk of ECG lead II with the given epoch and seq.
func WaveMsg(t testing.TB, device, epoch string, seq uint64, at time.Time) []byte {
	t.Helper()
	m := vitals.Message{V: vitals.Version, Type: vitals.TypeWave, Seq: seq, Epoch: epoch, Device: device, Source: "monitor0",
		Code: 131330, MDC: "MDC_ECG_ELEC_POTL_II", Label: "II", Unit: "mV", Rate: 500, Start: at, BoxTime: at,
		Samples: make(vitals.Samples, 50)}
	data, err := vitals.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// acks collects what an archive sends back to boxes.
type acks struct {
	mu   sync.Mutex
	sent map[string][]vitals.Message
}

func (r *acks) send(device string, data []byte) {
	m, err := vitals.Decode(data)
	if err != nil {
		panic(fmt.Sprintf("archive sent an ack it would refuse: %v", err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == nil {
		r.sent = map[string][]vitals.Message{}
	}
	r.sent[device] = append(r.sent[device], m)
}

func (r *acks) last(device string) (vitals.Message, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.sent[device]
	if len(a) == 0 {
		return vitals.Message{}, false
	}
	return a[len(a)-1], true
}

func newArchive(t testing.TB, h vitals.HistoryStore, maxPending int) (*vitals.Archive, *acks) {
	t.Helper()
	rec := &acks{}
	a, err := vitals.NewArchive(vitals.ArchiveConfig{History: h, SendAck: rec.send, MaxPending: maxPending})
	if err != nil {
		t.Fatal(err)
	}
	return a, rec
}

func mustReceive(t testing.TB, a *vitals.Archive, label string, data []byte, wantFresh bool) {
	t.Helper()
	fresh, err := a.Receive(device, label, data)
	if err != nil || fresh != wantFresh {
		t.Fatalf("receive %.80s: fresh %v, err %v; want fresh %v", data, fresh, err, wantFresh)
	}
}

func mustFlush(t testing.TB, a *vitals.Archive) {
	t.Helper()
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
}

// held reads every record of the device's channel, in cursor order.
func held(t testing.TB, h vitals.HistoryStore, channel string) []vitals.Record {
	t.Helper()
	var out []vitals.Record
	if err := h.Read(vitals.HistoryQuery{Device: device, Channel: channel}, func(r vitals.Record) bool {
		out = append(out, r)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func testDeduplicatesAndAcks(t *testing.T, open Opener) {
	a, acks := newArchive(t, open(t)(vitals.HistoryBounds{}), 0)
	for seq := uint64(1); seq <= 5; seq++ {
		mustReceive(t, a, vitals.LabelReliable, NumericMsg(t, device, "ep1", seq, t0), true)
	}
	mustReceive(t, a, vitals.LabelReliable, NumericMsg(t, device, "ep1", 3, t0), false)
	for _, seq := range []uint64{1, 3, 2} { // unordered, as the wave channel delivers
		mustReceive(t, a, vitals.LabelWave, WaveMsg(t, device, "ep1", seq, t0), true)
	}
	mustReceive(t, a, vitals.LabelWave, WaveMsg(t, device, "ep1", 2, t0), false)
	if _, ok := acks.last(device); ok {
		t.Fatal("acked before anything was committed")
	}
	mustFlush(t, a)
	if ack, ok := acks.last(device); !ok || ack.Seq != 5 || ack.Epoch != "ep1" || ack.Replay {
		t.Fatalf("ack %+v after the commit, want seq 5 of ep1", ack)
	}
	for _, c := range []struct {
		name, label string
		data        []byte
	}{
		{"another device's message", vitals.LabelReliable, NumericMsg(t, "amb-99", "ep1", 6, t0)},
		{"a numeric on the wave channel", vitals.LabelWave, NumericMsg(t, device, "ep1", 6, t0)},
		{"a wave on the reliable channel", vitals.LabelReliable, WaveMsg(t, device, "ep1", 9, t0)},
		{"a control message from a box", vitals.LabelReliable, []byte(`{"v":1,"type":"text","seq":1,"text":"hi"}`)},
		{"garbage", vitals.LabelReliable, []byte("\x00\xff")},
	} {
		if _, err := a.Receive(device, c.label, c.data); !errors.Is(err, vitals.ErrInvalid) {
			t.Errorf("%s: %v, want refused as invalid", c.name, err)
		}
	}
}

func testNewEpochAndRestart(t *testing.T, open Opener) {
	hub := open(t)
	a, acks := newArchive(t, hub(vitals.HistoryBounds{}), 0)
	for seq := uint64(1); seq <= 3; seq++ {
		mustReceive(t, a, vitals.LabelReliable, NumericMsg(t, device, "old-store", seq, t0), true)
	}
	// The box's store was replaced: its count starts again, and none of it is a duplicate.
	for seq := uint64(1); seq <= 2; seq++ {
		mustReceive(t, a, vitals.LabelReliable, NumericMsg(t, device, "new-store", seq, t0), true)
	}
	mustFlush(t, a)
	if ack, _ := acks.last(device); ack.Seq != 2 || ack.Epoch != "new-store" {
		t.Fatalf("ack %+v, want seq 2 of the new epoch", ack)
	}
	h2 := hub(vitals.HistoryBounds{})
	a2, _ := newArchive(t, h2, 0)
	ack, err := a2.Ack(device)
	if err != nil || !strings.Contains(string(ack), `"seq":2,"epoch":"new-store"`) {
		t.Fatalf("after a hub restart the ack on channel open is %s (%v)", ack, err)
	}
	mustReceive(t, a2, vitals.LabelReliable, NumericMsg(t, device, "new-store", 2, t0), false)
	if n := len(held(t, h2, vitals.LabelReliable)); n != 5 {
		t.Fatalf("history holds %d messages of both epochs, want 5", n)
	}
}

func testKeepsNewestWithinBound(t *testing.T, open Opener) {
	h := open(t)(vitals.HistoryBounds{ReliableBytes: 20 << 10, WaveBytes: 40 << 10})
	a, _ := newArchive(t, h, 0)
	for seq := uint64(1); seq <= 200; seq++ {
		mustReceive(t, a, vitals.LabelReliable, NumericMsg(t, device, "ep", seq, t0), true)
		mustReceive(t, a, vitals.LabelWave, WaveMsg(t, device, "ep", seq, t0), true)
		if seq%50 == 0 {
			mustFlush(t, a)
		}
	}
	var seqs []uint64
	for _, r := range held(t, h, vitals.LabelReliable) {
		seqs = append(seqs, r.Cursor.Seq)
	}
	var keep, size int64 // how many of the newest fit the bound, each counted with an 8-byte time
	for seq := uint64(200); size+int64(len(NumericMsg(t, device, "ep", seq, t0))+8) <= 20<<10; seq-- {
		size += int64(len(NumericMsg(t, device, "ep", seq, t0)) + 8)
		keep++
	}
	if int64(len(seqs)) != keep || seqs[len(seqs)-1] != 200 || seqs[0] != uint64(200-keep+1) {
		t.Fatalf("kept %d numerics (%v), want the newest %d", len(seqs), seqs, keep)
	}
	if waves := len(held(t, h, vitals.LabelWave)); waves == 0 || waves == 200 {
		t.Fatalf("kept %d wave chunks: the wave bound did not trim on its own", waves)
	}
}

// failing is a HistoryStore whose commits fail while broken is set, as a full disk
// or an unreachable database makes them.
type failing struct {
	vitals.HistoryStore
	mu     sync.Mutex
	broken bool
}

func (f *failing) Commit(recs []vitals.Record, states map[string]vitals.StreamState) error {
	f.mu.Lock()
	broken := f.broken
	f.mu.Unlock()
	if broken {
		return errors.New("no space left on device")
	}
	return f.HistoryStore.Commit(recs, states)
}

func testRefusesWhenItCannotStore(t *testing.T, open Opener) {
	h := &failing{HistoryStore: open(t)(vitals.HistoryBounds{}), broken: true}
	a, acks := newArchive(t, h, 2)
	mustReceive(t, a, vitals.LabelReliable, NumericMsg(t, device, "ep", 1, t0), true)
	mustReceive(t, a, vitals.LabelReliable, NumericMsg(t, device, "ep", 2, t0), true)
	for _, seq := range []uint64{3, 4} {
		if _, err := a.Receive(device, vitals.LabelReliable, NumericMsg(t, device, "ep", seq, t0)); !errors.Is(err, vitals.ErrBusy) {
			t.Fatalf("seq %d: %v, want ErrBusy", seq, err)
		}
	}
	if err := a.Flush(); err == nil {
		t.Fatal("a commit to a broken store reported success")
	}
	if _, ok := acks.last(device); ok {
		t.Fatal("acked while nothing was stored")
	}
	h.mu.Lock()
	h.broken = false
	h.mu.Unlock()
	mustFlush(t, a)
	ack, _ := acks.last(device)
	if ack.Seq != 2 || !ack.Replay {
		t.Fatalf("ack %+v, want seq 2 asking for a replay", ack)
	}
	// Messages still in flight from before the replay must not jump the hole.
	if _, err := a.Receive(device, vitals.LabelReliable, NumericMsg(t, device, "ep", 5, t0)); !errors.Is(err, vitals.ErrBusy) {
		t.Fatalf("seq 5 before the replay reached 3: %v, want refused", err)
	}
	for seq := uint64(3); seq <= 5; seq++ {
		mustReceive(t, a, vitals.LabelReliable, NumericMsg(t, device, "ep", seq, t0), true)
		mustFlush(t, a)
	}
	if ack, _ := acks.last(device); ack.Seq != 5 || ack.Replay {
		t.Fatalf("ack %+v, want seq 5 and no replay", ack)
	}
}

// testReportsWhileCommitsFail runs the archive as the hub does and checks that its
// report hears once that commits fail and once that they work again, so that the
// hub's status says when its vitals history is not kept.
func testReportsWhileCommitsFail(t *testing.T, open Opener) {
	h := &failing{HistoryStore: open(t)(vitals.HistoryBounds{}), broken: true}
	rec := &acks{}
	a, err := vitals.NewArchive(vitals.ArchiveConfig{History: h, SendAck: rec.send, FlushEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan error, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.RunReporting(ctx, func(err error) { reports <- err }) }()
	mustReceive(t, a, vitals.LabelReliable, NumericMsg(t, device, "ep", 1, t0), true)
	select {
	case err := <-reports:
		if err == nil {
			t.Fatal("the first report says commits work while the store refuses them")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report while every commit fails")
	}
	h.mu.Lock()
	h.broken = false
	h.mu.Unlock()
	select {
	case err := <-reports:
		if err != nil {
			t.Fatalf("second report %v, want commits working again", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report once commits work again")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run at its end: %v", err)
	}
	if len(reports) != 0 {
		t.Fatalf("%d more reports without a change", len(reports))
	}
	if ack, ok := rec.last(device); !ok || ack.Seq != 1 {
		t.Fatalf("ack %+v (%v), want seq 1 once the store took it", ack, ok)
	}
}

// page asks the archive's history handler, mounted as the hub mounts it.
func page(t *testing.T, srv *httptest.Server, query string) (vitals.HistoryPage, int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/api/v1/devices/" + device + "/vitals" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p vitals.HistoryPage
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("page %s: %v", body, err)
		}
	}
	return p, resp.StatusCode, string(body)
}

func historyServer(t *testing.T, a *vitals.Archive) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/devices/{device}/vitals", a.HistoryHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func seqsOf(t *testing.T, p vitals.HistoryPage) []uint64 {
	var out []uint64
	for _, raw := range p.Messages {
		m, err := vitals.Decode(raw)
		if err != nil {
			t.Fatalf("history holds an unreadable message: %v", err)
		}
		out = append(out, m.Seq)
	}
	return out
}

func testQueryBySeqTimeAndPage(t *testing.T, open Opener) {
	a, _ := newArchive(t, open(t)(vitals.HistoryBounds{}), 0)
	for seq := uint64(1); seq <= 30; seq++ {
		at := t0.Add(time.Duration(seq) * time.Second)
		mustReceive(t, a, vitals.LabelReliable, NumericMsg(t, device, "ep", seq, at), true)
		mustReceive(t, a, vitals.LabelWave, WaveMsg(t, device, "ep", seq, at), true)
	}
	mustFlush(t, a)
	srv := historyServer(t, a)

	p, code, body := page(t, srv, "")
	if code != 200 || len(p.Messages) != 30 || p.More || p.Epoch != "ep" || p.Channel != vitals.LabelReliable {
		t.Fatalf("whole history: %d %s", code, body)
	}
	p, _, _ = page(t, srv, "?since=25")
	if s := seqsOf(t, p); len(s) != 5 || s[0] != 26 {
		t.Fatalf("since=25 gave %v", s)
	}
	p, _, _ = page(t, srv, "?from="+t0.Add(28*time.Second).Format(time.RFC3339Nano))
	if s := seqsOf(t, p); len(s) != 3 || s[0] != 28 {
		t.Fatalf("from the 28th second gave %v", s)
	}
	// Paging with limit and the cursor visits every message once.
	var all []uint64
	for q := "?channel=vitals-wave&limit=7"; ; {
		p, code, body = page(t, srv, q)
		if code != 200 {
			t.Fatalf("page: %d %s", code, body)
		}
		all = append(all, seqsOf(t, p)...)
		if !p.More {
			break
		}
		q = "?channel=vitals-wave&limit=7&after=" + p.Next
	}
	if len(all) != 30 || all[0] != 1 || all[29] != 30 {
		t.Fatalf("paging the waves gave %v", all)
	}
	for _, q := range []string{"?channel=video", "?limit=0", "?limit=x", "?since=-1", "?after=zz", "?from=yesterday"} {
		if _, code, body := page(t, srv, q); code != http.StatusBadRequest || len(body) < 10 {
			t.Errorf("%s: %d %q, want 400 saying what is wrong", q, code, body)
		}
	}
	resp, err := http.Get(srv.URL + "/api/v1/devices/nobody/vitals")
	if err != nil {
		t.Fatal(err)
	}
	body2, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body2), `"messages":[]`) {
		t.Fatalf("unknown device: %d %s, want an empty history", resp.StatusCode, body2)
	}
}

// testStreamMovesBetweenHubs: two hubs' Archives on one store. The box publishes to
// A, moves to B (replaying what A had not acknowledged), starts a new epoch at B, and
// comes back to A, which last saw it two moves ago. Each hub acks from where the
// other left off, every message is held once, and both hubs serve the whole history.
func testStreamMovesBetweenHubs(t *testing.T, open Opener) {
	hub := open(t)
	ha, hb := hub(vitals.HistoryBounds{}), hub(vitals.HistoryBounds{})
	a, acksA := newArchive(t, ha, 0)
	b, acksB := newArchive(t, hb, 0)
	send := func(at *vitals.Archive, epoch string, from, to uint64, fresh func(seq uint64) bool) {
		t.Helper()
		for seq := from; seq <= to; seq++ {
			mustReceive(t, at, vitals.LabelReliable, NumericMsg(t, device, epoch, seq, t0.Add(time.Duration(seq)*time.Second)), fresh(seq))
			mustReceive(t, at, vitals.LabelWave, WaveMsg(t, device, epoch, seq, t0.Add(time.Duration(seq)*time.Second)), fresh(seq))
		}
	}
	all := func(uint64) bool { return true }

	send(a, "ep1", 1, 40, all)
	mustFlush(t, a)
	send(a, "ep1", 41, 50, all) // taken by A, not yet committed when the box loses A
	if ack, _ := acksA.last(device); ack.Seq != 40 {
		t.Fatalf("A acked %d, want 40", ack.Seq)
	}
	mustFlush(t, a) // A commits within its flush interval, before the box has moved
	// B knows the box from the shared store: its first ack says what is held.
	if ack, err := b.Ack(device); err != nil || !strings.Contains(string(ack), `"seq":50,"epoch":"ep1"`) {
		t.Fatalf("B's ack when the box arrives: %s (%v), want seq 50 of ep1", ack, err)
	}
	// The box replays from 41, all it had acked being 40: B drops what A holds.
	send(b, "ep1", 41, 80, func(seq uint64) bool { return seq > 50 })
	mustFlush(t, b)
	if ack, _ := acksB.last(device); ack.Seq != 80 || ack.Epoch != "ep1" {
		t.Fatalf("B acked %+v, want seq 80 of ep1", ack)
	}
	// The box's store is replaced while at B: a new epoch, numbered after ep1.
	send(b, "ep2", 1, 10, all)
	mustFlush(t, b)
	// Back at A, which remembers ep1 at 50.
	send(a, "ep2", 11, 20, all)
	send(a, "ep2", 5, 10, func(uint64) bool { return false }) // a late replay of what B holds
	mustFlush(t, a)
	if ack, _ := acksA.last(device); ack.Seq != 20 || ack.Epoch != "ep2" {
		t.Fatalf("A acked %+v after the box came back, want seq 20 of ep2", ack)
	}
	for _, h := range []vitals.HistoryStore{ha, hb} {
		for _, channel := range []string{vitals.LabelReliable, vitals.LabelWave} {
			recs := held(t, h, channel)
			if len(recs) != 100 {
				t.Fatalf("%s: %d messages held, want 80 of ep1 and 20 of ep2, each once", channel, len(recs))
			}
			for i, r := range recs {
				want := vitals.Cursor{EpochN: 1, Seq: uint64(i + 1)}
				if i >= 80 {
					want = vitals.Cursor{EpochN: 2, Seq: uint64(i - 79)}
				}
				if r.Cursor != want {
					t.Fatalf("%s: message %d is at %v, want %v: a gap or a duplicate", channel, i, r.Cursor, want)
				}
			}
		}
		st, err := h.Stream(device)
		if err != nil || st != (vitals.StreamState{Epoch: "ep2", EpochN: 2, Reliable: 20, WaveHigh: 20}) {
			t.Fatalf("stream state %+v (%v), want ep2 (2) at 20", st, err)
		}
	}
}
