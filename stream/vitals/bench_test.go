package vitals

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"lifeline/telemetry"
)

// oneSecondOf12Lead returns one second of a 12-lead monitor's bus traffic: 12 ECG
// leads at 500 Hz, pleth and respiration in 100 ms blocks, and its numerics.
func oneSecondOf12Lead() []telemetry.Event {
	p := newPatient(t0)
	var evs []telemetry.Event
	for range 10 {
		evs = append(evs, p.next()...)
	}
	return evs
}

// quantized rounds every sample to the resolution monitors deliver (1 µV for ECG,
// 1/1000 for pleth and respiration): the generator's full-precision floats spell
// longer than any real monitor's samples.
func quantized(evs []telemetry.Event) []telemetry.Event {
	out := make([]telemetry.Event, len(evs))
	for i, ev := range evs {
		w, ok := ev.(*telemetry.Wave)
		if !ok {
			out[i] = ev
			continue
		}
		q := *w
		q.Samples = make([]float32, len(w.Samples))
		for j, v := range w.Samples {
			q.Samples[j] = float32(math.Round(float64(v)*1000) / 1000)
		}
		out[i] = &q
	}
	return out
}

// BenchmarkEncode12Lead500Hz measures what the Outbox spends turning one second of a
// 12-lead 500 Hz stream into wire messages; "core-%" is the share of one core that
// keeping up in real time costs, "wire-bytes/s" the uplink the stream takes.
func BenchmarkEncode12Lead500Hz(b *testing.B) {
	b.Run("generator-precision", func(b *testing.B) { benchEncode(b, oneSecondOf12Lead()) })
	b.Run("monitor-resolution", func(b *testing.B) { benchEncode(b, quantized(oneSecondOf12Lead())) })
}

func benchEncode(b *testing.B, evs []telemetry.Event) {
	var bytes int
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		bytes = 0
		for _, ev := range evs {
			for _, m := range FromEvent("amb-07", telemetry.Message{Source: "monitor0", Event: ev}) {
				seq++
				m.Seq, m.Epoch = seq, "9f2c4e1a7b3d5e60"
				data, err := Marshal(&m)
				if err != nil {
					b.Fatal(err)
				}
				bytes += len(data)
			}
		}
	}
	b.SetBytes(int64(bytes))
	perSecond := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(perSecond)/float64(time.Second)*100, "core-%")
	b.ReportMetric(float64(bytes), "wire-bytes/s")
}

// BenchmarkDecode12Lead500Hz is the same second of stream read back, as the hub's
// Archive and a hospital system do.
func BenchmarkDecode12Lead500Hz(b *testing.B) {
	var seq, waveSeq uint64
	msgs := encodeAll(b, oneSecondOf12Lead(), &seq, &waveSeq)
	b.ReportAllocs()
	for b.Loop() {
		for _, data := range msgs {
			if _, err := Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed()/time.Duration(b.N))/float64(time.Second)*100, "core-%")
}

// BenchmarkPublishToSend measures the box's own share of the vitals latency: from a
// monitor event on the bus to the data channel's send call, for a wave chunk (sent
// directly) and a numeric (numbered, queued for the group commit, sent by the
// reliable sender), while the 12-lead stream runs.
func BenchmarkPublishToSend(b *testing.B) {
	store := openStore(b, "box.db")
	bus := telemetry.NewBus(nil)
	out, err := NewOutbox(OutboxConfig{Store: store, Bus: bus, Device: "amb-07"})
	if err != nil {
		b.Fatal(err)
	}
	arrived := make(chan time.Time, 4096)
	stamp := func([]byte) error {
		arrived <- time.Now()
		return nil
	}
	out.Attach(stamp, stamp)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out.Run(ctx) }()
	defer func() { cancel(); <-done }()

	p := newPatient(time.Now())
	var waveDelays, numDelays []time.Duration
	for b.Loop() {
		for _, ev := range p.next() {
			sent := time.Now()
			bus.Publish("monitor0", ev)
			var d time.Duration
			select {
			case at := <-arrived:
				d = at.Sub(sent)
			case <-time.After(5 * time.Second):
				b.Fatalf("a %s event never reached the channel", ev.Kind())
			}
			if ev.Kind() == telemetry.KindWave {
				waveDelays = append(waveDelays, d)
			} else {
				numDelays = append(numDelays, d)
			}
		}
	}
	report := func(name string, d []time.Duration) {
		if len(d) == 0 {
			return
		}
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds()), name+"-p50-µs")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), name+"-p99-µs")
	}
	report("wave", waveDelays)
	report("numeric", numDelays)
}
