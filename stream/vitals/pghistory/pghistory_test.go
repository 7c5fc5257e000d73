package pghistory

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"lifeline/internal/peers"
	"lifeline/stream/vitals"
	"lifeline/stream/vitals/historytest"
)

var bg = context.Background()

// databases makes a fresh, empty database per caller on one throwaway cluster
// (peers.PostgresDatabases).
func databases(t *testing.T) func(t testing.TB) string {
	return peers.PostgresDatabases(t, "vitals")
}

// pool opens a pool on dsn, as a hub does; each is another hub's connections.
func pool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(bg, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestConformance(t *testing.T) {
	fresh := databases(t)
	historytest.Run(t, func(t *testing.T) func(vitals.HistoryBounds) vitals.HistoryStore {
		dsn := fresh(t)
		return func(b vitals.HistoryBounds) vitals.HistoryStore {
			h, err := New(bg, pool(t, dsn), b)
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
	})
}

func TestMigrations(t *testing.T) {
	fresh := databases(t)
	if err := schema.Check(); err != nil {
		t.Fatal(err)
	}
	version := func(p *pgxpool.Pool) (v int) {
		t.Helper()
		if err := p.QueryRow(bg, `SELECT coalesce(max(version), 0) FROM vitals_schema_migrations`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	// From empty (the version before the first), by several hubs at once: one
	// applies each step, the others find it done.
	dsn := fresh(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			p, err := pgxpool.New(bg, dsn)
			if err != nil {
				errs <- err
				return
			}
			defer p.Close()
			_, err = New(bg, p, vitals.HistoryBounds{})
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("hubs migrating an empty database together: %v", err)
		}
	}
	p := pool(t, dsn)
	if v := version(p); v != len(migrations) {
		t.Fatalf("schema at version %d from empty, want %d", v, len(migrations))
	}
	for _, table := range []string{"vitals_streams", "vitals_history", "vitals_history_bytes"} {
		var n int
		if err := p.QueryRow(bg, `SELECT count(*) FROM `+table).Scan(&n); err != nil || n != 0 {
			t.Fatalf("table %s after migrating from empty: %d rows, %v", table, n, err)
		}
	}
	// A database of a newer release is refused, not changed.
	if _, err := p.Exec(bg, `INSERT INTO vitals_schema_migrations (version, name) VALUES ($1, 'from the future')`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if _, err := New(bg, p, vitals.HistoryBounds{}); err == nil || !strings.Contains(err.Error(), "newer than") {
		t.Fatalf("open a database of a newer schema: %v, want refused", err)
	}
}

// TestAnOlderStateDoesNotWinOverANewer: a hub that took a box's messages before the
// box moved may commit after the hub it moved to; the ack held must not go back.
func TestAnOlderStateDoesNotWinOverANewer(t *testing.T) {
	dsn := databases(t)(t)
	a, err := New(bg, pool(t, dsn), vitals.HistoryBounds{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(bg, pool(t, dsn), vitals.HistoryBounds{})
	if err != nil {
		t.Fatal(err)
	}
	st := func(epoch string, n uint32, rel, wave uint64) map[string]vitals.StreamState {
		return map[string]vitals.StreamState{"amb-07": {Epoch: epoch, EpochN: n, Reliable: rel, WaveHigh: wave}}
	}
	for _, c := range []struct {
		h    *History
		st   map[string]vitals.StreamState
		want vitals.StreamState
	}{
		{b, st("ep1", 1, 80, 70), vitals.StreamState{Epoch: "ep1", EpochN: 1, Reliable: 80, WaveHigh: 70}},
		{a, st("ep1", 1, 50, 75), vitals.StreamState{Epoch: "ep1", EpochN: 1, Reliable: 80, WaveHigh: 75}},
		{b, st("ep2", 2, 3, 1), vitals.StreamState{Epoch: "ep2", EpochN: 2, Reliable: 3, WaveHigh: 1}},
		{a, st("ep1", 1, 90, 90), vitals.StreamState{Epoch: "ep2", EpochN: 2, Reliable: 3, WaveHigh: 1}},
	} {
		if err := c.h.Commit(nil, c.st); err != nil {
			t.Fatal(err)
		}
		if got, err := a.Stream("amb-07"); err != nil || got != c.want {
			t.Fatalf("after committing %+v: %+v (%v), want %+v", c.st, got, err, c.want)
		}
	}
}

// TestOneCommitIsOneTransaction: a flush of a batch costs the database one
// transaction however many messages it holds: every row it wrote carries the same
// transaction id (xmin).
func TestOneCommitIsOneTransaction(t *testing.T) {
	p := pool(t, databases(t)(t))
	h, err := New(bg, p, vitals.HistoryBounds{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []vitals.Record
	for seq := uint64(1); seq <= 500; seq++ {
		ch, data := vitals.LabelWave, historytest.WaveMsg(t, "amb-07", "ep", seq, time.Now())
		if seq%10 == 0 {
			ch, data = vitals.LabelReliable, historytest.NumericMsg(t, "amb-07", "ep", seq, time.Now())
		}
		recs = append(recs, vitals.Record{Device: "amb-07", Channel: ch, Cursor: vitals.Cursor{EpochN: 1, Seq: seq},
			BoxTime: time.Now(), Data: data})
	}
	if err := h.Commit(recs, map[string]vitals.StreamState{"amb-07": {Epoch: "ep", EpochN: 1, Reliable: 500, WaveHigh: 499}}); err != nil {
		t.Fatal(err)
	}
	var rows, xacts int
	if err := p.QueryRow(bg, `SELECT count(*), count(DISTINCT x) FROM (
		SELECT xmin::text AS x FROM vitals_history UNION ALL
		SELECT xmin::text FROM vitals_streams UNION ALL
		SELECT xmin::text FROM vitals_history_bytes) AS w`).Scan(&rows, &xacts); err != nil {
		t.Fatal(err)
	}
	if rows != 500+1+2 || xacts != 1 {
		t.Fatalf("a commit of 500 messages wrote %d rows in %d transactions, want 503 in 1", rows, xacts)
	}
}
