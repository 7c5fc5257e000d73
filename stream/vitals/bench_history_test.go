package vitals_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"lifeline/internal/durable"
	"lifeline/internal/peers"
	"lifeline/stream/vitals"
	"lifeline/stream/vitals/pghistory"
)

// BenchmarkArchiveHistory measures what the hub's Archive keeps per second on each
// history engine: boxes each streaming a 12-lead monitor (12 ECG leads at 500 Hz,
// pleth, respiration, numerics), every message validated, de-duplicated and stored,
// one group commit per 100 ms of the boxes' traffic, as the hub flushes. One
// operation is one flush interval; "msgs/s" is what the engine took per second of
// the benchmark's time, "boxes" how many 12-lead boxes that keeps up with in real
// time, "commit-ms" the mean time of one commit.
func BenchmarkArchiveHistory(b *testing.B) {
	b.Run("bolt", func(b *testing.B) {
		s, err := durable.Open(filepath.Join(b.TempDir(), "vitals.db"), 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		benchArchive(b, vitals.NewBoltHistory(s, vitals.HistoryBounds{}))
	})
	b.Run("postgres", func(b *testing.B) {
		pool, err := pgxpool.New(context.Background(), peers.Postgres(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pool.Close)
		h, err := pghistory.New(context.Background(), pool, vitals.HistoryBounds{})
		if err != nil {
			b.Fatal(err)
		}
		benchArchive(b, h)
	})
}

// benchBoxes is how many boxes stream at once: one hub's share of a city's fleet.
const benchBoxes = 8

func benchArchive(b *testing.B, h vitals.HistoryStore) {
	a, err := vitals.NewArchive(vitals.ArchiveConfig{History: h})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	traffic := make([]func() ([]string, [][]byte), benchBoxes)
	for i := range traffic {
		traffic[i] = vitals.BoxTraffic(b, fmt.Sprintf("amb-%02d", i), start)
	}
	// One box's messages in one second, for the "boxes" metric.
	var perBox int
	probe := vitals.BoxTraffic(b, "probe", start)
	for range 10 {
		_, m := probe()
		perBox += len(m)
	}
	var msgs int
	var committing time.Duration
	for b.Loop() {
		for i, next := range traffic {
			labels, data := next()
			for j := range data {
				if _, err := a.Receive(fmt.Sprintf("amb-%02d", i), labels[j], data[j]); err != nil {
					b.Fatal(err)
				}
			}
			msgs += len(data)
		}
		t := time.Now()
		if err := a.Flush(); err != nil {
			b.Fatal(err)
		}
		committing += time.Since(t)
	}
	perSecond := float64(msgs) / b.Elapsed().Seconds()
	b.ReportMetric(perSecond, "msgs/s")
	b.ReportMetric(perSecond/float64(perBox), "boxes")
	b.ReportMetric(float64(committing.Microseconds())/1000/float64(b.N), "commit-ms")
}
