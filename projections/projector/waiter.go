package projector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
)

// ErrProjectionFailed: a projection a wait depends on is stopped on an
// event it cannot apply; waiting longer would not help.
var ErrProjectionFailed = errors.New("projections: projection failed")

// Waiter waits until projections have applied the log up to a position
// (read your writes, ARCHITECTURE.md rule 6). Projections run by the
// in-process runner are answered from its Hub without a query (checkpoints
// only move forward: a rebuild swap never moves one back); the others from
// the checkpoint table, read by at most one query per poll interval however
// many requests wait.
type Waiter struct {
	pool *pgxpool.Pool
	hub  *Hub
	poll time.Duration

	mu       sync.Mutex
	cachedAt time.Time
	cache    map[string]cpRow
}

type cpRow struct{ pos, state string }

// NewWaiter returns a Waiter over the checkpoints in pool. runner may be nil
// (a process that serves queries but runs no projection); poll is the
// checkpoint table polling interval (default 25ms when 0).
func NewWaiter(pool *pgxpool.Pool, runner *Runner, poll time.Duration) *Waiter {
	if poll <= 0 {
		poll = 25 * time.Millisecond
	}
	w := &Waiter{pool: pool, poll: poll}
	if runner != nil {
		w.hub = runner.hub
	}
	return w
}

// WaitFor returns nil once every named projection's checkpoint is at or
// after pos, ctx.Err() when ctx ends first (bound it with a deadline), or an
// error wrapping ErrProjectionFailed. A name without a checkpoint row (a
// projection not set up yet, or a typo) waits until ctx ends.
func (w *Waiter) WaitFor(ctx context.Context, pos eventstore.Position, names ...string) error {
	pending := map[string]bool{}
	for _, n := range names {
		pending[n] = true
	}
	start := time.Now()
	var ticker *time.Ticker
	for first := true; ; first = false {
		var hubChanged <-chan struct{}
		if w.hub != nil {
			var known map[string]eventstore.Position
			known, hubChanged = w.hub.snapshot(names)
			for n, p := range known {
				if p.Compare(pos) >= 0 {
					delete(pending, n)
				}
			}
			if len(pending) == 0 {
				return nil
			}
		}
		since := time.Now().Add(-w.poll)
		if first && (w.hub == nil || !w.hub.runsAll(names)) {
			// A projection run elsewhere: read the table now rather than
			// wait a poll interval. One run here announces its commits.
			since = start
		}
		if err := w.checkTable(ctx, pos, pending, since); err != nil || len(pending) == 0 {
			return err
		}
		if ticker == nil {
			ticker = time.NewTicker(w.poll)
			defer ticker.Stop()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hubChanged:
		case <-ticker.C:
		}
	}
}

// checkTable removes from pending the projections whose row in the
// checkpoint table reached pos, using a read started after since: waiters
// share reads, so the table sees at most about one query per poll interval
// plus one per arriving wait.
func (w *Waiter) checkTable(ctx context.Context, pos eventstore.Position, pending map[string]bool, since time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cachedAt.Before(since) {
		start := time.Now()
		rows, err := w.pool.Query(ctx, "SELECT name, position, state FROM projection_checkpoints")
		if err != nil {
			return fmt.Errorf("projections: read checkpoints: %w", err)
		}
		cache := map[string]cpRow{}
		for rows.Next() {
			var name string
			var r cpRow
			if err := rows.Scan(&name, &r.pos, &r.state); err != nil {
				rows.Close()
				return err
			}
			cache[name] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		w.cache, w.cachedAt = cache, start
	}
	// Positions serialise to fixed-width hex: text order is log order.
	target := pos.String()
	for n := range pending {
		r, ok := w.cache[n]
		switch {
		case !ok:
			// Not set up yet: stays pending.
		case r.pos >= target:
			delete(pending, n)
		case r.state == StateFailed:
			return fmt.Errorf("%w: %s", ErrProjectionFailed, n)
		}
	}
	return nil
}
