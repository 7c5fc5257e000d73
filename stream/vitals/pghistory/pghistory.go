// Package pghistory is the vitals history (vitals.HistoryStore) in PostgreSQL, for
// several hubs that share one database: every hub serves every box's history, and a
// box that moves to another hub finds its stream state there, so that hub drops what
// it already holds and its acks continue from the last one. It runs on the hub only.
//
// It lives beside stream/vitals rather than in internal/hubstate/pgstate: pgstate
// is the engine behind internal/hubstate's interface and sits below stream/ in the
// layout, so it must not know the vitals format, while this store is the engine
// behind stream/vitals's own interface. It takes a connection pool from the hub and
// keeps its schema with its own versioned migrations (migrate.go).
//
// One Commit is one transaction: the batch's messages go in by one INSERT over
// arrays, already held ones skipped; each channel that grew is trimmed to its bound,
// oldest first; the stream states are written last, and a state older than the one
// held (another hub's, written later) is kept as it is.
package pghistory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"lifeline/stream/vitals"
)

// History is vitals.HistoryStore in PostgreSQL.
type History struct {
	pool   *pgxpool.Pool
	bounds vitals.HistoryBounds
}

var _ vitals.HistoryStore = (*History)(nil)

// opTimeout bounds each call: HistoryStore's methods take no context, and a commit
// that waits on an unreachable database holds up the Archive's acks; the Archive
// keeps the batch and tries again at its next flush.
const opTimeout = 10 * time.Second

// New brings the history's schema in pool's database up to date and returns the
// store. ctx bounds the migration only. The pool stays the caller's to close.
func New(ctx context.Context, pool *pgxpool.Pool, bounds vitals.HistoryBounds) (*History, error) {
	return newAt(ctx, pool, bounds, len(migrations))
}

// newAt is New with the schema brought to version upTo, for tests of migrations.
func newAt(ctx context.Context, pool *pgxpool.Pool, bounds vitals.HistoryBounds, upTo int) (*History, error) {
	if _, err := migrate(ctx, pool, upTo); err != nil {
		return nil, fmt.Errorf("pghistory: %w", err)
	}
	return &History{pool: pool, bounds: bounds.WithDefaults()}, nil
}

// Stream implements vitals.HistoryStore.
func (h *History) Stream(device string) (vitals.StreamState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var st vitals.StreamState
	var epochN, reliable, waveHigh int64
	err := h.pool.QueryRow(ctx, `SELECT epoch, epoch_n, reliable, wave_high FROM vitals_streams WHERE device = $1`, device).
		Scan(&st.Epoch, &epochN, &reliable, &waveHigh)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return vitals.StreamState{}, nil
	case err != nil:
		return vitals.StreamState{}, fmt.Errorf("pghistory: stream state of %s: %w", device, err)
	}
	st.EpochN, st.Reliable, st.WaveHigh = uint32(epochN), uint64(reliable), uint64(waveHigh)
	return st, nil
}

// retries is how many times a commit PostgreSQL aborted to break a deadlock between
// two hubs (each holding rows the other wants) is run again.
const retries = 5

// Commit implements vitals.HistoryStore.
func (h *History) Commit(recs []vitals.Record, states map[string]vitals.StreamState) error {
	for _, r := range recs {
		if r.Cursor.Seq > math.MaxInt64 {
			return fmt.Errorf("pghistory: %s seq %d of %s is beyond what the database keeps", r.Channel, r.Cursor.Seq, r.Device)
		}
	}
	// In one order, so that two hubs committing the same boxes lock rows in the same
	// order and rarely deadlock.
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b vitals.Record) int {
		return cmp.Or(cmp.Compare(a.Device, b.Device), cmp.Compare(a.Channel, b.Channel),
			cmp.Compare(a.Cursor.EpochN, b.Cursor.EpochN), cmp.Compare(a.Cursor.Seq, b.Cursor.Seq))
	})
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var err error
	for range retries {
		err = pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
			grown, err := insertRecords(ctx, tx, recs)
			if err != nil {
				return err
			}
			for _, g := range grown {
				if err := h.trim(ctx, tx, g); err != nil {
					return err
				}
			}
			return writeStates(ctx, tx, states)
		})
		if !retryable(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("pghistory: commit of %d records: %w", len(recs), err)
	}
	return nil
}

// growth is the bytes one channel of one device gained in a commit.
type growth struct {
	device, channel string
	bytes           int64
}

// insertRecords adds the records the database does not hold yet, in one statement,
// and returns what each channel gained, in device and channel order.
func insertRecords(ctx context.Context, tx pgx.Tx, recs []vitals.Record) ([]growth, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	devices := make([]string, len(recs))
	channels := make([]string, len(recs))
	epochs := make([]int64, len(recs))
	seqs := make([]int64, len(recs))
	times := make([]int64, len(recs))
	data := make([][]byte, len(recs))
	for i, r := range recs {
		devices[i], channels[i], data[i] = r.Device, r.Channel, r.Data
		epochs[i], seqs[i], times[i] = int64(r.Cursor.EpochN), int64(r.Cursor.Seq), r.BoxTime.UnixNano()
	}
	rows, err := tx.Query(ctx, `
INSERT INTO vitals_history (device, channel, epoch_n, seq, box_ns, data)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bytea[])
ON CONFLICT DO NOTHING
RETURNING device, channel, 8 + octet_length(data)`, devices, channels, epochs, seqs, times, data)
	if err != nil {
		return nil, fmt.Errorf("insert: %w", err)
	}
	sums := map[[2]string]int64{}
	var device, channel string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&device, &channel, &n}, func() error {
		sums[[2]string{device, channel}] += n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("insert: %w", err)
	}
	grown := make([]growth, 0, len(sums))
	for k, n := range sums {
		grown = append(grown, growth{k[0], k[1], n})
	}
	slices.SortFunc(grown, func(a, b growth) int {
		return cmp.Or(cmp.Compare(a.device, b.device), cmp.Compare(a.channel, b.channel))
	})
	return grown, nil
}

// trimPage is how many of a channel's oldest messages trim reads at a time.
const trimPage = 512

// trim adds g to its channel's byte count and deletes the channel's oldest messages
// until the count is within the bound.
func (h *History) trim(ctx context.Context, tx pgx.Tx, g growth) error {
	var total int64
	if err := tx.QueryRow(ctx, `
INSERT INTO vitals_history_bytes (device, channel, bytes) VALUES ($1, $2, $3)
ON CONFLICT (device, channel) DO UPDATE SET bytes = vitals_history_bytes.bytes + excluded.bytes
RETURNING bytes`, g.device, g.channel, g.bytes).Scan(&total); err != nil {
		return fmt.Errorf("count the bytes of %s/%s: %w", g.device, g.channel, err)
	}
	bound := h.bounds.Of(g.channel)
	if total <= bound {
		return nil
	}
	was := total
	var lastEpoch, lastSeq int64 = -1, -1
	for total > bound {
		rows, err := tx.Query(ctx, `
SELECT epoch_n, seq, 8 + octet_length(data) FROM vitals_history
WHERE device = $1 AND channel = $2 AND (epoch_n, seq) > ($3, $4)
ORDER BY epoch_n, seq LIMIT $5`, g.device, g.channel, lastEpoch, lastSeq, trimPage)
		if err != nil {
			return fmt.Errorf("read the oldest of %s/%s: %w", g.device, g.channel, err)
		}
		var epochN, seq, size int64
		read := 0
		_, err = pgx.ForEachRow(rows, []any{&epochN, &seq, &size}, func() error {
			read++
			if total > bound {
				total -= size
				lastEpoch, lastSeq = epochN, seq
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the oldest of %s/%s: %w", g.device, g.channel, err)
		}
		if read < trimPage {
			break
		}
	}
	if lastSeq >= 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM vitals_history WHERE device = $1 AND channel = $2 AND (epoch_n, seq) <= ($3, $4)`,
			g.device, g.channel, lastEpoch, lastSeq); err != nil {
			return fmt.Errorf("trim %s/%s: %w", g.device, g.channel, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE vitals_history_bytes SET bytes = bytes - $3 WHERE device = $1 AND channel = $2`,
		g.device, g.channel, was-max(total, 0)); err != nil {
		return fmt.Errorf("count the bytes of %s/%s: %w", g.device, g.channel, err)
	}
	return nil
}

// writeStates writes the stream states, in one statement. A hub that saw a box
// before it moved may commit after the hub it moved to: a state of an earlier epoch
// than the one held is ignored, and within one epoch the seqs only grow.
func writeStates(ctx context.Context, tx pgx.Tx, states map[string]vitals.StreamState) error {
	if len(states) == 0 {
		return nil
	}
	devices := make([]string, 0, len(states))
	for d := range states {
		devices = append(devices, d)
	}
	slices.Sort(devices)
	epochs := make([]string, len(devices))
	epochNs := make([]int64, len(devices))
	reliable := make([]int64, len(devices))
	waveHigh := make([]int64, len(devices))
	for i, d := range devices {
		st := states[d]
		epochs[i], epochNs[i] = st.Epoch, int64(st.EpochN)
		reliable[i], waveHigh[i] = int64(min(st.Reliable, math.MaxInt64)), int64(min(st.WaveHigh, math.MaxInt64))
	}
	_, err := tx.Exec(ctx, `
INSERT INTO vitals_streams AS s (device, epoch, epoch_n, reliable, wave_high)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
ON CONFLICT (device) DO UPDATE SET
	epoch = excluded.epoch,
	epoch_n = excluded.epoch_n,
	reliable = CASE WHEN excluded.epoch_n = s.epoch_n THEN greatest(s.reliable, excluded.reliable) ELSE excluded.reliable END,
	wave_high = CASE WHEN excluded.epoch_n = s.epoch_n THEN greatest(s.wave_high, excluded.wave_high) ELSE excluded.wave_high END
WHERE excluded.epoch_n >= s.epoch_n`, devices, epochs, epochNs, reliable, waveHigh)
	if err != nil {
		return fmt.Errorf("write %d stream states: %w", len(devices), err)
	}
	return nil
}

// readPage is how many messages Read fetches at a time, so that a reader that stops
// early does not make the database send the rest.
const readPage = 1000

// Read implements vitals.HistoryStore.
func (h *History) Read(q vitals.HistoryQuery, fn func(vitals.Record) bool) error {
	from := int64(math.MinInt64)
	if !q.From.IsZero() {
		from = q.From.UnixNano()
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	after := q.After
	if after.Seq > math.MaxInt64 {
		return nil
	}
	for {
		rows, err := h.pool.Query(ctx, `
SELECT epoch_n, seq, box_ns, data FROM vitals_history
WHERE device = $1 AND channel = $2 AND (epoch_n, seq) > ($3, $4) AND box_ns >= $5
ORDER BY epoch_n, seq LIMIT $6`, q.Device, q.Channel, int64(after.EpochN), int64(after.Seq), from, readPage)
		if err != nil {
			return fmt.Errorf("pghistory: history of %s/%s: %w", q.Device, q.Channel, err)
		}
		var epochN, seq, at int64
		var data []byte
		n, stopped := 0, false
		_, err = pgx.ForEachRow(rows, []any{&epochN, &seq, &at, &data}, func() error {
			n++
			if stopped {
				return nil
			}
			after = vitals.Cursor{EpochN: uint32(epochN), Seq: uint64(seq)}
			r := vitals.Record{Device: q.Device, Channel: q.Channel, Cursor: after,
				BoxTime: time.Unix(0, at).UTC(), Data: append([]byte(nil), data...)}
			stopped = !fn(r)
			return nil
		})
		if err != nil {
			return fmt.Errorf("pghistory: history of %s/%s: %w", q.Device, q.Channel, err)
		}
		if stopped || n < readPage {
			return nil
		}
	}
}

// retryable reports whether PostgreSQL aborted a transaction to settle a conflict
// with another (a deadlock, a serialisation failure), so that running it again may
// succeed.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}
