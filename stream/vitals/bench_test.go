package vitals

import (
	"math"
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
