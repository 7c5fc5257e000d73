package appliance

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"lifeline/internal/durable"
	"lifeline/stream/vitals"
	"lifeline/stream/vitals/pghistory"
)

// vitalsHistoryConns is how many connections a hub keeps for the vitals history: one
// group commit at a time, and history reads beside it.
const vitalsHistoryConns = 3

// vitalsHistory returns where the hub keeps the vitals the boxes send: with a shared
// state, in its database, so that every hub serves every box's history and a box that
// moves to another hub continues its stream there; else in store (vitals.db). The
// history has connections of its own, so that its commits every 100 ms and the hub's
// requests do not wait for each other's.
func (h *Hub) vitalsHistory(store *durable.Store) (vitals.HistoryStore, error) {
	dsn := h.cfg.State.Postgres
	if dsn == "" {
		return vitals.NewBoltHistory(store, vitals.HistoryBounds{}), nil
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("vitals history: state.postgres: %w", err)
	}
	cfg.MaxConns, cfg.MinConns = vitalsHistoryConns, 0
	ctx, cancel := context.WithTimeout(context.Background(), stateConnectTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("vitals history: %w", err)
	}
	history, err := pghistory.New(ctx, pool, vitals.HistoryBounds{})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("vitals history: %w", err)
	}
	h.closers = append(h.closers, func() error { pool.Close(); return nil })
	return history, nil
}
