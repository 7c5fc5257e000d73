package telemetry

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBusSlowSubscriberDropsOldestAndNeverBlocks(t *testing.T) {
	b := NewBus(nil)
	slow := b.Subscribe("slow", 4)
	fast := b.Subscribe("fast", 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			b.Publish("m", &Numeric{Code: MDC_ECG_HEART_RATE, Value: float64(i), Unit: UnitPerMinute, ReceiveTime: time.Unix(int64(i), 0)})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a subscriber that never reads")
	}
	if got := slow.Dropped(); got != 96 {
		t.Errorf("slow dropped %d, want 96", got)
	}
	// The slow subscriber keeps the newest four, in order.
	for want := 96; want < 100; want++ {
		m := <-slow.C()
		if v := m.Event.(*Numeric).Value; v != float64(want) {
			t.Fatalf("slow got %v, want %d", v, want)
		}
	}
	if fast.Dropped() != 0 || len(fast.C()) != 100 {
		t.Errorf("fast: dropped %d, buffered %d", fast.Dropped(), len(fast.C()))
	}
	slow.Unsubscribe()
	if _, ok := <-slow.C(); ok {
		t.Error("channel not closed after Unsubscribe")
	}
	b.Publish("m", &Numeric{Code: MDC_PULS_OXIM_SAT_O2, Value: 97, Unit: UnitPercent})
}

func TestVitalsHandlerShape(t *testing.T) {
	b := NewBus(nil)
	rec := httptest.NewRecorder()
	VitalsHandler(b).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/vitals", nil))
	if body := rec.Body.String(); body != "[]\n" {
		t.Fatalf("empty bus: body %q, want []", body)
	}
	mt := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	b.Publish("m", &Numeric{Code: MDC_ECG_HEART_RATE, Value: 72, Unit: UnitPerMinute, MonitorTime: mt, ReceiveTime: mt.Add(time.Second)})
	b.Publish("m", &Numeric{Code: MDC_ECG_HEART_RATE, Value: 70, Unit: UnitPerMinute, MonitorTime: mt.Add(-time.Minute)}) // older: ignored
	b.Publish("m", &Numeric{Code: MDC_PULS_OXIM_SAT_O2, Value: 97, Unit: UnitPercent, ReceiveTime: mt})
	rec = httptest.NewRecorder()
	VitalsHandler(b).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/vitals", nil))
	var got []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	// The four fields DESIGN.md promises, and the optional ones that say where the value
	// came from; a value without a channel has none.
	want := []map[string]any{
		{"code": "MDC_ECG_HEART_RATE", "value": 72.0, "unit": "/min", "time": "2026-05-01T10:00:00Z", "label": "HR", "source": "m", "primary": true},
		{"code": "MDC_PULS_OXIM_SAT_O2", "value": 97.0, "unit": "%", "time": "2026-05-01T10:00:00Z", "label": "SpO2", "source": "m", "primary": true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Errorf("element %d has keys %v, want those of %v", i, got[i], want[i])
		}
		for k, v := range want[i] {
			if got[i][k] != v {
				t.Errorf("element %d %s = %v, want %v", i, k, got[i][k], v)
			}
		}
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
}

func TestTimelineSteadyAxisAcrossBursts(t *testing.T) {
	var tl Timeline
	t0 := time.Unix(1000, 0)
	// 75 Hz blocks of 25 samples (1/3 s) arriving with ±40 ms jitter.
	jitter := []time.Duration{0, 40, -30, 10, -40, 25}
	var prevEnd time.Time
	for i, j := range jitter {
		w := &Wave{Code: MDC_PULS_OXIM_PLETH, Rate: 75, Samples: make([]float32, 25)}
		w.ReceiveTime = t0.Add(time.Duration(i+1)*time.Second/3 + j*time.Millisecond)
		re := tl.Place(w)
		if i == 0 {
			if !re {
				t.Error("first block not anchored")
			}
		} else {
			if re || !w.Start.Equal(prevEnd) {
				t.Errorf("block %d: start %v, want %v (reanchored %v)", i, w.Start, prevEnd, re)
			}
		}
		prevEnd = w.End()
	}
	// A 2 s hole re-anchors and marks the gap.
	w := &Wave{Code: MDC_PULS_OXIM_PLETH, Rate: 75, Samples: make([]float32, 25), ReceiveTime: t0.Add(4 * time.Second)}
	if !tl.Place(w) || !w.Gap {
		t.Errorf("hole not detected: gap=%v", w.Gap)
	}
}

// TestBusKeepsChannelsApart: one code on two channels stays two values in
// GET /api/v1/vitals, each with its channel, and exactly one of them is primary; with
// ?primary=1 a consumer gets one value per code.
func TestBusKeepsChannelsApart(t *testing.T) {
	b := NewBus(nil)
	mt := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	pub := func(c Code, v float64, ch Channel) {
		b.Publish("mon", &Numeric{Code: c, Value: v, Unit: UnitCelsius, Channel: ch, MonitorTime: mt})
	}
	pub(MDC_TEMP, 28.3, Channel{ID: "1.26.1.2", Label: "T2"})
	pub(MDC_TEMP, 28.4, Channel{ID: "1.26.1.1", Label: "T1"})
	pub(MDC_RESP_RATE, 30, Channel{ID: "1.6.1.1", Label: "ECG_RESP"})
	pub(MDC_RESP_RATE, 18, Channel{ID: "1.20.1.1", Label: "ANALY_AWAY_MULTI_PARAM", Primary: true})
	get := func(query string) []Vital {
		rec := httptest.NewRecorder()
		VitalsHandler(b).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/vitals"+query, nil))
		var vs []Vital
		if err := json.Unmarshal(rec.Body.Bytes(), &vs); err != nil {
			t.Fatalf("%s: %v: %s", query, err, rec.Body)
		}
		return vs
	}
	all := get("")
	type row struct {
		code, channel string
		value         float64
		primary       bool
	}
	var rows []row
	for _, v := range all {
		rows = append(rows, row{v.Code, v.Channel, v.Value, v.Primary})
	}
	want := []row{
		{"MDC_RESP_RATE", "1.6.1.1", 30, false}, {"MDC_RESP_RATE", "1.20.1.1", 18, true},
		{"MDC_TEMP", "1.26.1.1", 28.4, true}, {"MDC_TEMP", "1.26.1.2", 28.3, false},
	}
	if len(rows) != len(want) {
		t.Fatalf("vitals %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("vital %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
	if all[2].ChannelLabel != "T1" {
		t.Errorf("channel label %q, want T1", all[2].ChannelLabel)
	}
	one := get("?primary=1")
	if len(one) != 2 || one[0].Value != 18 || one[1].Value != 28.4 {
		t.Errorf("primary values %+v, want RR 18 and T 28.4", one)
	}
	rec := httptest.NewRecorder()
	VitalsHandler(b).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/vitals?primary=maybe", nil))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "primary") {
		t.Errorf("bad primary: %d %s", rec.Code, rec.Body)
	}
}

func TestDecimalAndChannelOrder(t *testing.T) {
	if got := Decimal(23*0.1, 1); got != 2.3 || strconv.FormatFloat(got, 'g', -1, 64) != "2.3" {
		t.Errorf("Decimal(2.3000000000000003, 1) = %v", got)
	}
	if got := Decimal(37.004999, 2); got != 37 {
		t.Errorf("Decimal(37.004999, 2) = %v", got)
	}
	for _, c := range []struct {
		a, b string
		want int
	}{{"1.6.1.1", "1.20.1.1", -1}, {"T2", "T10", -1}, {"P1", "P1", 0}, {"", "T1", -1}, {"0x0102", "0x0101", 1}} {
		if got := CompareChannelIDs(c.a, c.b); got != c.want {
			t.Errorf("CompareChannelIDs(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if NameOf(Code(131072+61441), "ST-MCL") != "ST-MCL" || NameOf(MDC_TEMP, "Temp") != "MDC_TEMP" || NameOf(Code(9), "") != "MDC_CODE_9" {
		t.Error("NameOf does not prefer the table, then the monitor's name, then the number")
	}
}
