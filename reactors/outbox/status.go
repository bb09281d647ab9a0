package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Summary is the outbox as `projections status` shows it.
type Summary struct {
	Pending int64 `json:"pending"`
	// Retrying are pending messages that failed at least once.
	Retrying int64 `json:"retrying"`
	Sent     int64 `json:"sent"`
	Dead     int64 `json:"dead"`
	// DeadLetters are the most recent dead messages (at most 20).
	DeadLetters []DeadLetter `json:"dead_letters"`
}

// DeadLetter is a message given up on.
type DeadLetter struct {
	EventID   uuid.UUID `json:"event_id"`
	Kind      string    `json:"kind"`
	UserID    uuid.UUID `json:"user_id"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	CreatedAt time.Time `json:"created_at"`
}

// Querier is what Summarize and Requeue need (a pool or a transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Summarize counts the outbox's messages by state. An outbox not created
// yet (the policy never ran) is empty.
func Summarize(ctx context.Context, q Querier) (Summary, error) {
	s := Summary{DeadLetters: []DeadLetter{}}
	err := q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'pending' AND attempts > 0),
		count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE state = 'dead') FROM `+Table).Scan(&s.Pending, &s.Retrying, &s.Sent, &s.Dead)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("outbox: summarize: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT event_id, kind, user_id, attempts, COALESCE(last_error, ''), created_at FROM `+Table+`
		WHERE state = 'dead' ORDER BY created_at DESC LIMIT 20`)
	if err != nil {
		return s, fmt.Errorf("outbox: dead letters: %w", err)
	}
	s.DeadLetters, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadLetter, error) {
		var d DeadLetter
		err := r.Scan(&d.EventID, &d.Kind, &d.UserID, &d.Attempts, &d.LastError, &d.CreatedAt)
		return d, err
	})
	if err != nil {
		return s, fmt.Errorf("outbox: dead letters: %w", err)
	}
	return s, nil
}

// Requeue makes dead messages due again now, with their attempts reset:
// the ones named, or every dead one when ids is empty. It returns how
// many it requeued. A message whose link has expired meanwhile dies
// again at its next attempt, unsent.
func Requeue(ctx context.Context, q Querier, now time.Time, ids ...uuid.UUID) (int64, error) {
	sql := `UPDATE ` + Table + ` SET state = 'pending', attempts = 0, next_attempt_at = $1, lease_until = NULL WHERE state = 'dead'`
	args := []any{now.UTC()}
	if len(ids) > 0 {
		sql += ` AND event_id = ANY($2)`
		args = append(args, ids)
	}
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("outbox: requeue: %w", err)
	}
	return tag.RowsAffected(), nil
}
