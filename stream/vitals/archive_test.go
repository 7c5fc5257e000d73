package vitals

import (
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
)

// numericMsg is a box's SpO2 numeric with the given epoch and seq.
func numericMsg(t testing.TB, device, epoch string, seq uint64, at time.Time) []byte {
	t.Helper()
	v := 97.0
	m := Message{V: Version, Type: TypeNumeric, Seq: seq, Epoch: epoch, Device: device, Source: "monitor0",
		Code: 150456, MDC: "MDC_PULS_OXIM_SAT_O2", Label: "SpO2", Unit: "%", Value: &v, BoxTime: at}
	data, err := Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func waveMsg(t testing.TB, device, epoch string, seq uint64, at time.Time) []byte {
	t.Helper()
	m := Message{V: Version, Type: TypeWave, Seq: seq, Epoch: epoch, Device: device, Source: "monitor0",
		Code: 131330, MDC: "MDC_ECG_ELEC_POTL_II", Label: "II", Unit: "mV", Rate: 500, Start: at, BoxTime: at,
		Samples: make(Samples, 50)}
	data, err := Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// ackRecorder collects what the archive sends back to boxes.
type ackRecorder struct {
	mu   sync.Mutex
	acks map[string][]Message
}

func (r *ackRecorder) send(device string, data []byte) {
	m, err := Decode(data)
	if err != nil {
		panic(fmt.Sprintf("archive sent an ack it would refuse: %v", err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acks == nil {
		r.acks = map[string][]Message{}
	}
	r.acks[device] = append(r.acks[device], m)
}

func (r *ackRecorder) last(device string) (Message, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.acks[device]
	if len(a) == 0 {
		return Message{}, false
	}
	return a[len(a)-1], true
}

func newArchive(t testing.TB, h HistoryStore, maxPending int) (*Archive, *ackRecorder) {
	t.Helper()
	rec := &ackRecorder{}
	a, err := NewArchive(ArchiveConfig{History: h, SendAck: rec.send, MaxPending: maxPending})
	if err != nil {
		t.Fatal(err)
	}
	return a, rec
}

func mustReceive(t testing.TB, a *Archive, label string, data []byte, wantFresh bool) {
	t.Helper()
	fresh, err := a.Receive("amb-07", label, data)
	if err != nil || fresh != wantFresh {
		t.Fatalf("receive %s: fresh %v, err %v; want fresh %v", data, fresh, err, wantFresh)
	}
}

func TestArchiveDeduplicatesAndAcksOnlyWhatIsDurable(t *testing.T) {
	a, acks := newArchive(t, NewBoltHistory(openStore(t, "hub.db"), HistoryBounds{}), 0)
	for seq := uint64(1); seq <= 5; seq++ {
		mustReceive(t, a, LabelReliable, numericMsg(t, "amb-07", "ep1", seq, t0), true)
	}
	mustReceive(t, a, LabelReliable, numericMsg(t, "amb-07", "ep1", 3, t0), false)
	for _, seq := range []uint64{1, 3, 2} { // unordered, as the wave channel delivers
		mustReceive(t, a, LabelWave, waveMsg(t, "amb-07", "ep1", seq, t0), true)
	}
	mustReceive(t, a, LabelWave, waveMsg(t, "amb-07", "ep1", 2, t0), false)
	if _, ok := acks.last("amb-07"); ok {
		t.Fatal("acked before anything was committed")
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	if ack, ok := acks.last("amb-07"); !ok || ack.Seq != 5 || ack.Epoch != "ep1" || ack.Replay {
		t.Fatalf("ack %+v after the commit, want seq 5 of ep1", ack)
	}

	for _, c := range []struct {
		name, label string
		data        []byte
	}{
		{"another device's message", LabelReliable, numericMsg(t, "amb-99", "ep1", 6, t0)},
		{"a numeric on the wave channel", LabelWave, numericMsg(t, "amb-07", "ep1", 6, t0)},
		{"a wave on the reliable channel", LabelReliable, waveMsg(t, "amb-07", "ep1", 9, t0)},
		{"a control message from a box", LabelReliable, []byte(`{"v":1,"type":"text","seq":1,"text":"hi"}`)},
		{"garbage", LabelReliable, []byte("\x00\xff")},
	} {
		if _, err := a.Receive("amb-07", c.label, c.data); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want refused as invalid", c.name, err)
		}
	}
}

func TestArchiveTakesANewEpochAsANewSequenceAndSurvivesRestart(t *testing.T) {
	store := openStore(t, "hub.db")
	a, acks := newArchive(t, NewBoltHistory(store, HistoryBounds{}), 0)
	for seq := uint64(1); seq <= 3; seq++ {
		mustReceive(t, a, LabelReliable, numericMsg(t, "amb-07", "old-store", seq, t0), true)
	}
	// The box's store was replaced: its count starts again, and none of it is a duplicate.
	for seq := uint64(1); seq <= 2; seq++ {
		mustReceive(t, a, LabelReliable, numericMsg(t, "amb-07", "new-store", seq, t0), true)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	if ack, _ := acks.last("amb-07"); ack.Seq != 2 || ack.Epoch != "new-store" {
		t.Fatalf("ack %+v, want seq 2 of the new epoch", ack)
	}
	a2, _ := newArchive(t, NewBoltHistory(store, HistoryBounds{}), 0)
	ack, err := a2.Ack("amb-07")
	if err != nil || !strings.Contains(string(ack), `"seq":2,"epoch":"new-store"`) {
		t.Fatalf("after a hub restart the ack on channel open is %s (%v)", ack, err)
	}
	mustReceive(t, a2, LabelReliable, numericMsg(t, "amb-07", "new-store", 2, t0), false)
	var n int
	a2.cfg.History.Read(HistoryQuery{Device: "amb-07", Channel: LabelReliable}, func(Record) bool { n++; return true })
	if n != 5 {
		t.Fatalf("history holds %d messages of both epochs, want 5", n)
	}
}

func TestHistoryKeepsTheNewestWithinEachChannelsBound(t *testing.T) {
	h := NewBoltHistory(openStore(t, "hub.db"), HistoryBounds{ReliableBytes: 20 << 10, WaveBytes: 40 << 10})
	a, _ := newArchive(t, h, 0)
	for seq := uint64(1); seq <= 200; seq++ {
		mustReceive(t, a, LabelReliable, numericMsg(t, "amb-07", "ep", seq, t0), true)
		mustReceive(t, a, LabelWave, waveMsg(t, "amb-07", "ep", seq, t0), true)
		if seq%50 == 0 {
			if err := a.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	var seqs []uint64
	h.Read(HistoryQuery{Device: "amb-07", Channel: LabelReliable}, func(r Record) bool { seqs = append(seqs, r.Cursor.Seq); return true })
	var keep, size int64 // how many of the newest fit the bound, each stored with its 8-byte time
	for seq := uint64(200); size+int64(len(numericMsg(t, "amb-07", "ep", seq, t0))+8) <= 20<<10; seq-- {
		size += int64(len(numericMsg(t, "amb-07", "ep", seq, t0)) + 8)
		keep++
	}
	if int64(len(seqs)) != keep || seqs[len(seqs)-1] != 200 || seqs[0] != uint64(200-keep+1) {
		t.Fatalf("kept %d numerics (%d..%d), want the newest %d", len(seqs), seqs[0], seqs[len(seqs)-1], keep)
	}
	var waves int
	h.Read(HistoryQuery{Device: "amb-07", Channel: LabelWave}, func(r Record) bool { waves++; return true })
	if waves == 0 || waves == 200 {
		t.Fatalf("kept %d wave chunks: the wave bound did not trim on its own", waves)
	}
}

// failingHistory is a HistoryStore whose commits fail while broken is set, as a full
// disk makes them.
type failingHistory struct {
	HistoryStore
	mu     sync.Mutex
	broken bool
}

func (f *failingHistory) Commit(recs []Record, states map[string]StreamState) error {
	f.mu.Lock()
	broken := f.broken
	f.mu.Unlock()
	if broken {
		return errors.New("no space left on device")
	}
	return f.HistoryStore.Commit(recs, states)
}

func TestArchiveRefusesWhenItCannotStoreAndAsksForTheRestAgain(t *testing.T) {
	h := &failingHistory{HistoryStore: NewBoltHistory(openStore(t, "hub.db"), HistoryBounds{}), broken: true}
	a, acks := newArchive(t, h, 2)
	mustReceive(t, a, LabelReliable, numericMsg(t, "amb-07", "ep", 1, t0), true)
	mustReceive(t, a, LabelReliable, numericMsg(t, "amb-07", "ep", 2, t0), true)
	for _, seq := range []uint64{3, 4} {
		if _, err := a.Receive("amb-07", LabelReliable, numericMsg(t, "amb-07", "ep", seq, t0)); !errors.Is(err, ErrBusy) {
			t.Fatalf("seq %d: %v, want ErrBusy", seq, err)
		}
	}
	if err := a.Flush(); err == nil {
		t.Fatal("a commit to a broken store reported success")
	}
	if _, ok := acks.last("amb-07"); ok {
		t.Fatal("acked while nothing was on disk")
	}
	h.mu.Lock()
	h.broken = false
	h.mu.Unlock()
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	ack, _ := acks.last("amb-07")
	if ack.Seq != 2 || !ack.Replay {
		t.Fatalf("ack %+v, want seq 2 asking for a replay", ack)
	}
	// Messages still in flight from before the replay must not jump the hole.
	if _, err := a.Receive("amb-07", LabelReliable, numericMsg(t, "amb-07", "ep", 5, t0)); !errors.Is(err, ErrBusy) {
		t.Fatalf("seq 5 before the replay reached 3: %v, want refused", err)
	}
	for seq := uint64(3); seq <= 5; seq++ {
		mustReceive(t, a, LabelReliable, numericMsg(t, "amb-07", "ep", seq, t0), true)
		if err := a.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if ack, _ := acks.last("amb-07"); ack.Seq != 5 || ack.Replay {
		t.Fatalf("ack %+v, want seq 5 and no replay", ack)
	}
}

// historyServer mounts the history as the hub does.
func historyServer(t *testing.T, a *Archive) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/devices/{device}/vitals", a.HistoryHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func getPage(t *testing.T, srv *httptest.Server, query string) (HistoryPage, int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/api/v1/devices/amb-07/vitals" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p HistoryPage
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("page %s: %v", body, err)
		}
	}
	return p, resp.StatusCode, string(body)
}

func seqsOf(t *testing.T, p HistoryPage) []uint64 {
	var out []uint64
	for _, raw := range p.Messages {
		m, err := Decode(raw)
		if err != nil {
			t.Fatalf("history holds an unreadable message: %v", err)
		}
		out = append(out, m.Seq)
	}
	return out
}

func TestHistoryQueryBySeqTimeAndPage(t *testing.T) {
	a, _ := newArchive(t, NewBoltHistory(openStore(t, "hub.db"), HistoryBounds{}), 0)
	for seq := uint64(1); seq <= 30; seq++ {
		at := t0.Add(time.Duration(seq) * time.Second)
		mustReceive(t, a, LabelReliable, numericMsg(t, "amb-07", "ep", seq, at), true)
		mustReceive(t, a, LabelWave, waveMsg(t, "amb-07", "ep", seq, at), true)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	srv := historyServer(t, a)

	p, code, body := getPage(t, srv, "")
	if code != 200 || len(p.Messages) != 30 || p.More || p.Epoch != "ep" || p.Channel != LabelReliable {
		t.Fatalf("whole history: %d %s", code, body)
	}
	p, _, _ = getPage(t, srv, "?since=25")
	if s := seqsOf(t, p); len(s) != 5 || s[0] != 26 {
		t.Fatalf("since=25 gave %v", s)
	}
	p, _, _ = getPage(t, srv, "?from="+t0.Add(28*time.Second).Format(time.RFC3339Nano))
	if s := seqsOf(t, p); len(s) != 3 || s[0] != 28 {
		t.Fatalf("from the 28th second gave %v", s)
	}
	// Paging with limit and the cursor visits every message once.
	var all []uint64
	for q := "?channel=vitals-wave&limit=7"; ; {
		p, code, body = getPage(t, srv, q)
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
		if _, code, body := getPage(t, srv, q); code != http.StatusBadRequest || len(body) < 10 {
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

func TestControlNumbersSurviveAHubRestartAndReachTheCrewOnce(t *testing.T) {
	store := openStore(t, "hub.db")
	var mu sync.Mutex
	var crew []Control
	b := startBox(t, openStore(t, "box.db"), OutboxConfig{OnControl: func(c Control) {
		mu.Lock()
		crew = append(crew, c)
		mu.Unlock()
	}})
	a, _ := newArchive(t, NewBoltHistory(store, HistoryBounds{}), 0)
	var sent [][]byte
	for _, text := range []string{"ETA?", "Give aspirin 300 mg"} {
		data, err := a.Control("amb-07", Control{ID: text, From: "Dr Li", Text: text})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, data)
	}
	a2, _ := newArchive(t, NewBoltHistory(store, HistoryBounds{}), 0) // the hub restarted
	data, err := a2.Control("amb-07", Control{Type: "ecg-request", ID: "r-1", From: "Dr Li"})
	if err != nil {
		t.Fatal(err)
	}
	sent = append(sent, data)
	for _, data := range append(sent, sent...) { // everything resent after a reconnect
		if err := b.out.HandleFromHub(data); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(crew) != 3 || crew[0].Seq != 1 || crew[2].Seq != 3 || crew[2].Type != "ecg-request" || crew[1].Text != "Give aspirin 300 mg" {
		t.Fatalf("crew got %+v, want three messages numbered 1..3 once each", crew)
	}
	for _, c := range []Control{{Type: TypeAck}, {Type: TypeNumeric}, {Type: "Bad Type"}, {Text: strings.Repeat("x", maxText+1)}} {
		if _, err := a2.Control("amb-07", c); !errors.Is(err, ErrInvalid) {
			t.Errorf("control %q of %d bytes: %v, want refused", c.Type, len(c.Text), err)
		}
	}
}

func TestArchiveBoundsWhatWaitsForTheDiskInBytes(t *testing.T) {
	a, err := NewArchive(ArchiveConfig{History: NewBoltHistory(openStore(t, "hub.db"), HistoryBounds{}), MaxPendingBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, a, LabelWave, waveMsg(t, "amb-07", "ep", 1, t0), true)
	if _, err := a.Receive("amb-07", LabelWave, waveMsg(t, "amb-07", "ep", 2, t0)); !errors.Is(err, ErrBusy) {
		t.Fatalf("second chunk beyond the byte bound: %v, want ErrBusy", err)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	mustReceive(t, a, LabelWave, waveMsg(t, "amb-07", "ep", 2, t0), true)
}
