package record

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lifeline/internal/durable"
	"lifeline/internal/wait"
	"lifeline/telemetry"
	"lifeline/telemetry/hl7"
)

// mllpPort replays MLLP bytes to the HL7 driver and takes its ACKs.
type mllpPort struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (p *mllpPort) Read(b []byte) (int, error)         { return p.in.Read(b) }
func (p *mllpPort) Write(b []byte) (int, error)        { return p.out.Write(b) }
func (p *mllpPort) SetReadTimeout(time.Duration) error { return nil }

// busSink publishes what a driver emits, as the monitor reader does.
type busSink struct {
	bus    *telemetry.Bus
	source string
}

func (s busSink) Emit(e telemetry.Event) { s.bus.Publish(s.source, e) }
func (busSink) Frame()                   {}
func (busSink) Skipped(int, string)      {}

type channelValue struct {
	code, channel, label string
	value                float64
}

// TestSameCodeOnTwoChannelsEndToEnd: GE's published B40 example, read over MLLP by the
// HL7 driver, keeps its two temperatures and its two respiration rates apart on the
// bus, in GET /api/v1/vitals, in the durable record, and in the record's HL7 export
// parsed back.
func TestSameCodeOnTwoChannelsEndToEnd(t *testing.T) {
	raw, err := os.ReadFile("../hl7/testdata/ge_b40_pcd01.hl7")
	if err != nil {
		t.Fatal(err)
	}
	store, err := durable.Open(filepath.Join(t.TempDir(), "box.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	bus := telemetry.NewBus(nil)
	rec, err := New(Config{Store: store, Bus: bus, FlushEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()

	// The driver reads the framed message and stops at the end of the input.
	port := &mllpPort{in: bytes.NewReader(hl7.Frame(nil, raw))}
	if err := hl7.New(hl7.Config{Location: time.UTC}).Run(context.Background(), port, busSink{bus, "monitor0"}); err == nil {
		t.Fatal("the driver did not report the end of its input")
	}
	want := []channelValue{
		{"MDC_RESP_RATE", "1.6.1.1", "ECG_RESP", 30}, {"MDC_RESP_RATE", "1.20.1.1", "ANALY_AWAY_MULTI_PARAM", 18},
		{"MDC_TEMP", "1.26.1.1", "METER_TEMP", 37.1}, {"MDC_TEMP", "1.26.1.2", "METER_TEMP", 36.5},
	}
	pick := func(vs []channelValue) []channelValue {
		var out []channelValue
		for _, v := range vs {
			if v.code == "MDC_RESP_RATE" || v.code == "MDC_TEMP" {
				out = append(out, v)
			}
		}
		return out
	}
	check := func(stage string, got []channelValue) {
		t.Helper()
		got = pick(got)
		if len(got) != len(want) {
			t.Fatalf("%s: %+v, want %+v", stage, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: value %d = %+v, want %+v", stage, i, got[i], want[i])
			}
		}
	}

	// GET /api/v1/vitals.
	w := httptest.NewRecorder()
	telemetry.VitalsHandler(bus).ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/vitals", nil))
	var vitals []telemetry.Vital
	if err := json.Unmarshal(w.Body.Bytes(), &vitals); err != nil {
		t.Fatal(err)
	}
	var api []channelValue
	primaryRR := 0.0
	for _, v := range vitals {
		api = append(api, channelValue{v.Code, v.Channel, v.ChannelLabel, v.Value})
		if v.Code == "MDC_RESP_RATE" && v.Primary {
			primaryRR = v.Value
		}
	}
	check("/api/v1/vitals", api)
	if primaryRR != 18 {
		t.Errorf("primary respiration rate %v, want the capnograph's 18", primaryRR)
	}

	// The durable record, then its HL7 export read back.
	wait.For(t, 10*time.Second, "the record flushed", func() bool {
		msgs, _ := Load(store)
		return len(msgs) >= len(vitals)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recorded, err := Load(store)
	if err != nil {
		t.Fatal(err)
	}
	var back []channelValue
	for _, out := range ExportHL7(recorded, "AMB-7", time.Now()) {
		m, err := hl7.Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range hl7.Decode(m, time.Now(), time.UTC).Events {
			if n, ok := e.(*telemetry.Numeric); ok {
				back = append(back, channelValue{telemetry.NameOf(n.Code, n.Ref), n.Channel.ID, n.Channel.Label, n.Value})
			}
		}
	}
	// The export follows the record's order, which is the message's: airway RR first.
	want = []channelValue{want[1], want[0], want[2], want[3]}
	check("HL7 export parsed back", back)
}

// TestWavesKeepOneChannelPerLead: a lead recorded on two channels does not interleave
// two signals in the ECG export's series.
func TestWavesKeepOneChannelPerLead(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	block := func(ch string, at time.Duration, v float32) telemetry.Message {
		return telemetry.Message{Source: "monitor0", Event: &telemetry.Wave{Code: telemetry.MDC_ECG_ELEC_POTL_II, Unit: "mV", Rate: 500,
			Channel: telemetry.Channel{ID: ch}, Start: t0.Add(at), Samples: []float32{v, v}}}
	}
	msgs := []telemetry.Message{block("ECG2", 0, 2), block("ECG1", 0, 1), block("ECG2", 4*time.Millisecond, 2), block("ECG1", 4*time.Millisecond, 1)}
	ws := Waves(msgs, telemetry.MDC_ECG_ELEC_POTL_II)
	if len(ws) != 2 || ws[0].Channel.ID != "ECG1" || ws[1].Channel.ID != "ECG1" {
		t.Errorf("blocks %+v, want the two of ECG1", ws)
	}
}
