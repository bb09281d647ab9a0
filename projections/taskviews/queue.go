package taskviews

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Queue answers the worker's questions from the tasks read model. Its
// answers are hints: the read model lags the log, so the commands the
// worker then runs (claim, release, expire) re-check on the task stream,
// and a blob collector must spare blobs younger than that lag (a task just
// created is not in task_files yet).
type Queue struct {
	pool *pgxpool.Pool
}

// NewQueue returns a Queue reading the serving generation through the views.
func NewQueue(pool *pgxpool.Pool) *Queue { return &Queue{pool: pool} }

func (q *Queue) ids(ctx context.Context, what, sql string, args ...any) ([]uuid.UUID, error) {
	rows, err := q.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("tasks: %s: %w", what, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("tasks: %s: %w", what, err)
	}
	return ids, nil
}

// Queued returns up to limit queued tasks, those queued longest first (a
// retried or released task queues again at the time it was requeued).
func (q *Queue) Queued(ctx context.Context, limit int) ([]uuid.UUID, error) {
	return q.ids(ctx, "queued", `SELECT task_id FROM `+TableTasks+` WHERE status = 'queued'
		ORDER BY queued_at, task_id LIMIT $1`, limit)
}

// StaleClaims returns up to limit processing tasks whose lease ended
// before now, the longest overdue first.
func (q *Queue) StaleClaims(ctx context.Context, now time.Time, limit int) ([]uuid.UUID, error) {
	return q.ids(ctx, "stale claims", `SELECT task_id FROM `+TableTasks+` WHERE status = 'processing' AND lease_until < $1
		ORDER BY lease_until LIMIT $2`, now, limit)
}

// Expirable returns up to limit live tasks (neither deleted nor expired)
// created before createdBefore, oldest first.
func (q *Queue) Expirable(ctx context.Context, createdBefore time.Time, limit int) ([]uuid.UUID, error) {
	return q.ids(ctx, "expirable", `SELECT task_id FROM `+TableTasks+` WHERE created_at < $1
		ORDER BY created_at LIMIT $2`, createdBefore, limit)
}

// ExpirableFor is Expirable for one owner (a per-user retention period).
func (q *Queue) ExpirableFor(ctx context.Context, owner uuid.UUID, createdBefore time.Time, limit int) ([]uuid.UUID, error) {
	return q.ids(ctx, "expirable", `SELECT task_id FROM `+TableTasks+` WHERE owner_id = $1 AND created_at < $2
		ORDER BY created_at LIMIT $3`, owner, createdBefore, limit)
}

// LiveBlobs returns the SHA-256 names of every blob a live task references.
func (q *Queue) LiveBlobs(ctx context.Context) (map[string]bool, error) {
	rows, err := q.pool.Query(ctx, `SELECT DISTINCT sha256 FROM `+TableFiles)
	if err != nil {
		return nil, fmt.Errorf("tasks: live blobs: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("tasks: live blobs: %w", err)
		}
		out[s] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tasks: live blobs: %w", err)
	}
	return out, nil
}

// BlobReferenced reports whether a live task references the blob named sha256.
func (q *Queue) BlobReferenced(ctx context.Context, sha256 string) (bool, error) {
	var ok bool
	if err := q.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+TableFiles+` WHERE sha256 = $1)`, sha256).Scan(&ok); err != nil {
		return false, fmt.Errorf("tasks: blob referenced: %w", err)
	}
	return ok, nil
}
