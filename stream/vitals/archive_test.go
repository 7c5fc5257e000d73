package vitals

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

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

// TestControlMessagesReachTheCrewOnce: the hub sends its messages again after a
// reconnect until they are confirmed (stream/crew); the box hands each seq to the crew
// once, a late one that fills a gap too, and refuses what is not a control message.
func TestControlMessagesReachTheCrewOnce(t *testing.T) {
	var mu sync.Mutex
	var crew []Control
	b := startBox(t, openStore(t, "box.db"), OutboxConfig{OnControl: func(c Control) {
		mu.Lock()
		crew = append(crew, c)
		mu.Unlock()
	}})
	var sent [][]byte
	for i, m := range []Message{
		{Type: TypeText, Text: "ETA?"}, {Type: TypeText, Text: "Give aspirin 300 mg"}, {Type: TypeECGRequest},
	} {
		m.V, m.Seq, m.ID, m.From, m.HubTime = Version, uint64(i+1), "m-"+strconv.Itoa(i+1), "Dr Li", time.Now().UTC()
		data, err := Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, data)
	}
	// 2 could not be sent at first and comes after 3; then everything is resent after
	// a reconnect.
	for _, data := range [][]byte{sent[0], sent[2], sent[1], sent[0], sent[1], sent[2]} {
		if err := b.out.HandleFromHub(data); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(crew) != 3 || crew[0].Seq != 1 || crew[1].Seq != 3 || crew[2].Seq != 2 || crew[1].Type != TypeECGRequest || crew[2].Text != "Give aspirin 300 mg" {
		t.Fatalf("crew got %+v, want messages 1, 3 and the late 2, once each", crew)
	}
	for _, bad := range []string{
		`{"v":1,"type":"numeric","seq":9,"code":1}`, `{"v":1,"type":"Bad Type","seq":9}`,
		`{"v":1,"type":"text","seq":9,"text":"` + strings.Repeat("x", maxText+1) + `"}`,
	} {
		if err := b.out.HandleFromHub([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%.60s: %v, want refused", bad, err)
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
