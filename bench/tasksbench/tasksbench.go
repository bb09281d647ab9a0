// Package tasksbench seeds the tasks read models directly, for benchmarks
// of the read side (GET /v1/history p99 for a user with 100,000 tasks,
// export throughput) that would otherwise spend minutes appending and
// projecting events first.
//
// The rows it writes are not in the log: a rebuild of the tasks projection
// drops them. Use it only on a benchmark database.
package tasksbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/taskviews"
)

// Seeded describes what Seed wrote.
type Seeded struct {
	Tasks, Live, Files int
	// From and To bound the seeded created_at times.
	From, To time.Time
}

// Seed writes n tasks of owner into the serving generation of the tasks
// read models with COPY, spread over the year before now (UTC), in the mix
// a busy user would have: mostly completed, some failed, queued, deleted
// and expired; one to three files each, named "document-<i>-<j>.png" (so
// q=document-123- finds a handful). It sets up the projection's tables
// when they do not exist yet, keeps task_stats consistent with the history
// it adds, and analyzes the tables so the planner sees their size.
func Seed(ctx context.Context, pool *pgxpool.Pool, owner uuid.UUID, n int) (Seeded, error) {
	if err := projector.Setup(ctx, pool, taskviews.New()); err != nil {
		return Seeded{}, err
	}
	var gen int
	if err := pool.QueryRow(ctx, "SELECT generation FROM projection_checkpoints WHERE name = $1", taskviews.Name).Scan(&gen); err != nil {
		return Seeded{}, fmt.Errorf("tasksbench: generation: %w", err)
	}
	tb := projector.Tables{Generation: gen}
	rng := rand.New(rand.NewPCG(uint64(n), 42)) //nolint:gosec // reproducible benchmark data, not a secret
	to := time.Now().UTC().Truncate(time.Second)
	from := to.AddDate(-1, 0, 0)
	span := to.Sub(from)

	type agg struct {
		total, oc, of, ms, runs, files, bytes int64
		n                                     [7]int64
	}
	stats := map[time.Time]*agg{}
	var taskRows, fileRows, histRows [][]any
	out := Seeded{Tasks: n, From: from, To: to}
	statusIx := map[string]int{}
	for i, s := range taskviews.Statuses {
		statusIx[s] = i
	}
	for i := range n {
		id := uuid.New()
		created := from.Add(time.Duration(rng.Int64N(int64(span)))).Truncate(time.Microsecond)
		var status string
		switch r := rng.IntN(100); {
		case r < 80:
			status = taskviews.StatusCompleted
		case r < 90:
			status = taskviews.StatusFailed
		case r < 95:
			status = taskviews.StatusQueued
		case r < 98:
			status = taskviews.StatusDeleted
		default:
			status = taskviews.StatusExpired
		}
		nf := 1 + rng.IntN(3)
		names := make([]string, nf)
		var bytes int64
		live := status != taskviews.StatusDeleted && status != taskviews.StatusExpired
		for j := range nf {
			names[j] = fmt.Sprintf("document-%d-%d.png", i, j)
			size := int64(10_000 + rng.IntN(200_000))
			bytes += size
			if live {
				fileRows = append(fileRows, []any{id, uuid.New(), owner, int64(j + 1), names[j], "image/png", size, fmt.Sprintf("%064x", rng.Uint64())})
			}
		}
		search := strings.ToLower(strings.Join(names, "\n"))
		var started, finished, deleted, expired *time.Time
		var ms int64
		var runs, attempts int
		outcome := ""
		var errText, result *string
		if status != taskviews.StatusQueued {
			s := created.Add(time.Duration(1+rng.IntN(5)) * time.Second)
			ms = int64(200 + rng.IntN(3000))
			f := s.Add(time.Duration(ms) * time.Millisecond).Truncate(time.Microsecond)
			started, finished, runs, attempts = &s, &f, 1, 1
			outcome = taskviews.StatusCompleted
			r := "recognised text of task " + id.String()
			result = &r
			if status == taskviews.StatusFailed {
				outcome = taskviews.StatusFailed
				e := "tesseract: cannot read the image"
				errText, result = &e, nil
			}
			switch status {
			case taskviews.StatusDeleted:
				d := f.Add(time.Hour)
				deleted = &d
			case taskviews.StatusExpired:
				x := f.Add(24 * time.Hour)
				expired = &x
			}
		}
		histRows = append(histRows, []any{id, owner, taskviews.Day(created), status, outcome, 3, attempts, runs, created, started,
			finished, deleted, expired, ms, nf, bytes, names, search, errText})
		if live {
			out.Live++
			taskRows = append(taskRows, []any{id, owner, status, 3, attempts, created, created, started, finished, result,
				errText, ms, nf, bytes, search, created, int64(nf)})
		}
		out.Files += nf
		a := stats[taskviews.Day(created)]
		if a == nil {
			a = &agg{}
			stats[taskviews.Day(created)] = a
		}
		a.total++
		a.n[statusIx[status]]++
		switch outcome {
		case taskviews.StatusCompleted:
			a.oc++
		case taskviews.StatusFailed:
			a.of++
		}
		a.ms += ms
		a.runs += int64(runs)
		a.files += int64(nf)
		a.bytes += bytes
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		copies := []struct {
			table string
			cols  []string
			rows  [][]any
		}{
			{taskviews.TableTasks, []string{"task_id", "owner_id", "status", "max_attempts", "attempts", "created_at", "queued_at",
				"started_at", "finished_at", "result", "error", "processing_ms", "file_count", "bytes", "search", "updated_at", "revision"}, taskRows},
			{taskviews.TableFiles, []string{"task_id", "file_id", "owner_id", "ordinal", "name", "content_type", "size", "sha256"}, fileRows},
			{taskviews.TableHistory, []string{"task_id", "owner_id", "day", "status", "outcome", "max_attempts", "attempts", "runs",
				"created_at", "started_at", "finished_at", "deleted_at", "expired_at", "processing_ms", "file_count", "bytes",
				"file_names", "search", "error"}, histRows},
		}
		for _, c := range copies {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{tb.Name(c.table)}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
				return fmt.Errorf("copy into %s: %w", c.table, err)
			}
		}
		b := &pgx.Batch{}
		st := tb.Ident(taskviews.TableStats)
		for d, a := range stats {
			b.Queue(`INSERT INTO `+st+` AS s (owner_id, day, total, n_queued, n_processing, n_completed, n_failed, n_cancelled,
				n_deleted, n_expired, outcome_completed, outcome_failed, processing_ms, runs, files, bytes)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
				ON CONFLICT (owner_id, day) DO UPDATE SET total = s.total + excluded.total, n_queued = s.n_queued + excluded.n_queued,
				n_processing = s.n_processing + excluded.n_processing, n_completed = s.n_completed + excluded.n_completed,
				n_failed = s.n_failed + excluded.n_failed, n_cancelled = s.n_cancelled + excluded.n_cancelled,
				n_deleted = s.n_deleted + excluded.n_deleted, n_expired = s.n_expired + excluded.n_expired,
				outcome_completed = s.outcome_completed + excluded.outcome_completed, outcome_failed = s.outcome_failed + excluded.outcome_failed,
				processing_ms = s.processing_ms + excluded.processing_ms, runs = s.runs + excluded.runs,
				files = s.files + excluded.files, bytes = s.bytes + excluded.bytes`,
				owner, d, a.total, a.n[0], a.n[1], a.n[2], a.n[3], a.n[4], a.n[5], a.n[6], a.oc, a.of, a.ms, a.runs, a.files, a.bytes)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return Seeded{}, fmt.Errorf("tasksbench: seed: %w", err)
	}
	// Fresh statistics and a visibility map: the plans (and index-only
	// counts) a long-running server would have.
	for _, t := range []string{taskviews.TableTasks, taskviews.TableFiles, taskviews.TableHistory, taskviews.TableStats} {
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+tb.Ident(t)); err != nil {
			return Seeded{}, fmt.Errorf("tasksbench: vacuum %s: %w", t, err)
		}
	}
	return out, nil
}
