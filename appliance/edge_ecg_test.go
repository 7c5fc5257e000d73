package appliance

import (
	"testing"
	"time"

	"lifeline/stream/vitals"
	"lifeline/telemetry"
)

// feedECG gives h seconds of all twelve leads at 500 Hz in 0.25 s blocks from start,
// received as they end; spoil, when set, may change each block before it is added.
func feedECG(h *ecgHistory, start time.Time, seconds float64, spoil func(i int, w *telemetry.Wave)) (end time.Time) {
	const rate, block = 500.0, 125
	for i := 0; float64(i*block)/rate < seconds; i++ {
		at := start.Add(time.Duration(float64(i*block) / rate * float64(time.Second)))
		for _, c := range telemetry.ECG12 {
			w := &telemetry.Wave{Code: c, Unit: "mV", Rate: rate, Start: at, Samples: make([]float32, block),
				ReceiveTime: at.Add(block * time.Second / rate)}
			if spoil != nil {
				spoil(i, w)
			}
			h.add(telemetry.Message{Source: "monitor0", Event: w})
			end = w.End()
		}
	}
	return end
}

// TestECGHistoryAnswersWithTheLastTenSeconds: with every lead on for the last 10 s the
// request is answered from the history, ending at the newest common sample; a lead off,
// a hole, too short a history or a monitor gone quiet make the box record the next 10 s
// instead, and say why.
func TestECGHistoryAnswersWithTheLastTenSeconds(t *testing.T) {
	span := vitals.ECGSeconds * time.Second
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

	var h ecgHistory
	end := feedECG(&h, start, 30, nil)
	msgs, got, err := h.last(span, end.Add(300*time.Millisecond))
	if err != nil || !got.Equal(end) {
		t.Fatalf("whole history: %v, ends %v, want %v", err, got, end)
	}
	var oldest time.Time
	for _, m := range msgs {
		if s := m.Event.(*telemetry.Wave).Start; oldest.IsZero() || s.Before(oldest) {
			oldest = s
		}
	}
	if held := end.Sub(oldest); held < span || held > ecgHistoryKeep+time.Second {
		t.Errorf("the history holds %v of ECG after 30 s, want between %v and %v", held, span, ecgHistoryKeep+time.Second)
	}
	if _, _, err := h.last(span, end.Add(ecgFresh+time.Second)); err == nil {
		t.Error("a monitor silent for longer than ecgFresh still answered from the history")
	}

	refused := map[string]func(i int, w *telemetry.Wave){
		"lead off 3 s ago": func(i int, w *telemetry.Wave) {
			w.Invalid = i == 108 && w.Code == telemetry.MDC_ECG_ELEC_POTL_V4
		},
		"samples lost 5 s ago": func(i int, w *telemetry.Wave) {
			w.Gap = i == 100 && w.Code == telemetry.MDC_ECG_ELEC_POTL_I
		},
	}
	for name, spoil := range refused {
		var h ecgHistory
		end := feedECG(&h, start, 30, spoil)
		if _, _, err := h.last(span, end); err == nil {
			t.Errorf("%s: answered from the history", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	var short ecgHistory
	end = feedECG(&short, start, 6, nil)
	if _, _, err := short.last(span, end); err == nil {
		t.Error("6 s of ECG answered a request for 10 s")
	}
	// A lead off long before the span does not matter.
	var old ecgHistory
	end = feedECG(&old, start, 30, func(i int, w *telemetry.Wave) { w.Invalid = i < 40 })
	if _, _, err := old.last(span, end); err != nil {
		t.Errorf("a lead off 20 s before the request kept the history from answering: %v", err)
	}
}
