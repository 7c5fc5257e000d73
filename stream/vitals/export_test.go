package vitals

import (
	"testing"
	"time"

	"lifeline/telemetry"
)

// BoxTraffic returns a function that gives the next 100 ms of a 12-lead monitor's
// wire messages from device, numbered as its Outbox numbers them, each with the
// channel it travels on. It is here for the history benchmark, which is in package
// vitals_test because it runs the PostgreSQL store and pghistory imports vitals.
func BoxTraffic(tb testing.TB, device string, start time.Time) func() (labels []string, msgs [][]byte) {
	p := newPatient(start)
	var seq, waveSeq uint64
	return func() ([]string, [][]byte) {
		var labels []string
		var msgs [][]byte
		for _, ev := range p.next() {
			for _, m := range FromEvent(device, telemetry.Message{Source: "monitor0", Event: ev}) {
				m.Epoch = "9f2c4e1a7b3d5e60"
				label := LabelReliable
				if m.Type == TypeWave {
					waveSeq++
					m.Seq, label = waveSeq, LabelWave
				} else {
					seq++
					m.Seq = seq
				}
				data, err := Marshal(&m)
				if err != nil {
					tb.Fatalf("encode %s: %v", m.Type, err)
				}
				labels, msgs = append(labels, label), append(msgs, data)
			}
		}
		return labels, msgs
	}
}
