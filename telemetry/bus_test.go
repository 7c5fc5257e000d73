package telemetry

import (
	"encoding/json"
	"net/http/httptest"
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
	want := []map[string]any{
		{"code": "MDC_ECG_HEART_RATE", "value": 72.0, "unit": "/min", "time": "2026-05-01T10:00:00Z"},
		{"code": "MDC_PULS_OXIM_SAT_O2", "value": 97.0, "unit": "%", "time": "2026-05-01T10:00:00Z"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if len(got[i]) != 4 {
			t.Errorf("element %d has keys %v, want exactly code,value,unit,time", i, got[i])
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
