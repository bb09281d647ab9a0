package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
)

// ErrProjectionFailed: a projection a wait depends on is stopped on an
// event it cannot apply; waiting longer would not help.
var ErrProjectionFailed = errors.New("projections: projection failed")

// Waiter waits until projections have applied the log up to a position
// (read your writes, ARCHITECTURE.md rule 6). It wakes on the in-process
// runner's commits (Hub) and polls the checkpoint table for projections run
// by other processes.
type Waiter struct {
	pool *pgxpool.Pool
	hub  *Hub
	poll time.Duration
}

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
	ticker := time.NewTicker(w.poll)
	defer ticker.Stop()
	for {
		// The hub only wakes the wait up; the checkpoint table decides (a
		// rebuild swap can move a checkpoint back to a new generation that
		// has not reached what the old one had). Take the wake-up channel
		// before reading, so that no advance falls between the two.
		var changed <-chan struct{}
		if w.hub != nil {
			changed = w.hub.changed()
		}
		if err := w.check(ctx, pos, pending); err != nil || len(pending) == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-ticker.C:
		}
	}
}

// check reads the pending projections' checkpoints and removes those that
// reached pos.
func (w *Waiter) check(ctx context.Context, pos eventstore.Position, pending map[string]bool) error {
	names := make([]string, 0, len(pending))
	for n := range pending {
		names = append(names, n)
	}
	rows, err := w.pool.Query(ctx, "SELECT name, position, state FROM projection_checkpoints WHERE name = ANY($1)", names)
	if err != nil {
		return fmt.Errorf("projections: read checkpoints: %w", err)
	}
	defer rows.Close()
	target := pos.String()
	for rows.Next() {
		var name, p, state string
		if err := rows.Scan(&name, &p, &state); err != nil {
			return err
		}
		// Positions serialise to fixed-width hex: text order is log order.
		if p >= target {
			delete(pending, name)
			continue
		}
		if state == StateFailed {
			return fmt.Errorf("%w: %s", ErrProjectionFailed, name)
		}
	}
	// A projection without a checkpoint row yet (its runner has not set
	// it up) stays pending: the caller's bound ends the wait.
	return rows.Err()
}
