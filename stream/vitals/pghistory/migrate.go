package pghistory

import (
	"context"
	"lifeline/internal/pgschema"

	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the steps in order; versions count from 1 without gaps.
var migrations = []pgschema.Step{
	{Version: 1, Name: "vitals history: each box's stream state, messages, and bytes held per channel", SQL: `
-- What the hubs hold of each box's stream: the ack a hub sends, whichever hub the
-- box publishes to. A hub writing an older state than another hub wrote is ignored
-- (Commit), so a box moving between hubs never sees its ack go back.
CREATE TABLE vitals_streams (
	device    text PRIMARY KEY,
	epoch     text NOT NULL,
	epoch_n   bigint NOT NULL CHECK (epoch_n >= 0),
	reliable  bigint NOT NULL CHECK (reliable >= 0),
	wave_high bigint NOT NULL CHECK (wave_high >= 0)
);
-- Every message kept, exactly as the box sent it; box_ns is its box_time in
-- nanoseconds since 1970, as BoltHistory keeps it (timestamptz would round it).
CREATE TABLE vitals_history (
	device  text NOT NULL,
	channel text NOT NULL CHECK (channel IN ('vitals', 'vitals-wave')),
	epoch_n bigint NOT NULL,
	seq     bigint NOT NULL,
	box_ns  bigint NOT NULL,
	data    bytea NOT NULL,
	PRIMARY KEY (device, channel, epoch_n, seq)
);
-- The bytes each channel of each box holds (8 per message for its time, as in
-- BoltHistory, plus the message), so that trimming to the bound needs no scan.
CREATE TABLE vitals_history_bytes (
	device  text NOT NULL,
	channel text NOT NULL,
	bytes   bigint NOT NULL,
	PRIMARY KEY (device, channel)
);
`},
}

// schema is the vitals history's tables: a version table and lock of their own
// ("LfVH"), so that it is brought forward independently of the hub's state by the
// package that owns it.
var schema = pgschema.Schema{What: "the vitals history", Table: "vitals_schema_migrations", Lock: 0x4c665648, Steps: migrations}

// migrate brings the history's schema up to version upTo and returns the version the
// database is at.
func migrate(ctx context.Context, pool *pgxpool.Pool, upTo int) (int, error) {
	return schema.Migrate(ctx, pool, upTo)
}
