package taskviews

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Filter selects one owner's tasks. Owner is required: every query is
// scoped to it in SQL. Zero fields of the rest do not filter.
type Filter struct {
	Owner uuid.UUID
	// Statuses keeps tasks in one of these statuses.
	Statuses []string
	// From and To bound created_at: From inclusive, To exclusive.
	From, To time.Time
	// Query is a case-insensitive substring of one of the file names.
	Query string
}

// Sort orders a list. The zero value is SortCreatedDesc.
type Sort string

// Sort orders. Each breaks ties by task id in the same direction, so pages
// are stable.
const (
	SortCreatedDesc  Sort = "-created_at"
	SortCreatedAsc   Sort = "created_at"
	SortFinishedDesc Sort = "-finished_at"
	SortFinishedAsc  Sort = "finished_at"
)

// Sorts lists the accepted sort orders.
var Sorts = []Sort{SortCreatedDesc, SortCreatedAsc, SortFinishedDesc, SortFinishedAsc}

func (s Sort) orderBy() string {
	switch s {
	case SortCreatedAsc:
		return "created_at ASC, task_id ASC"
	case SortFinishedDesc:
		return "finished_at DESC NULLS LAST, task_id DESC"
	case SortFinishedAsc:
		return "finished_at ASC NULLS LAST, task_id ASC"
	}
	return "created_at DESC, task_id DESC"
}

// where renders f as a WHERE clause (owner first) and its arguments.
func (f Filter) where() (string, []any) {
	args := []any{f.Owner}
	conds := []string{"owner_id = $1"}
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if len(f.Statuses) == 1 {
		add("status = ?", f.Statuses[0])
	} else if len(f.Statuses) > 1 {
		add("status = ANY(?)", f.Statuses)
	}
	if !f.From.IsZero() {
		add("created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("created_at < ?", f.To)
	}
	if f.Query != "" {
		add("search LIKE ?", "%"+likeEscape(strings.ToLower(f.Query))+"%")
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// likeEscape makes s match literally inside a LIKE pattern (default
// escape character: backslash).
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// File is one file of a task.
type File struct {
	FileID      uuid.UUID `json:"file_id"`
	Name        string    `json:"name"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
}

// Task is a live task as the API returns it. Result and Files are filled
// only by Get.
type Task struct {
	TaskID       uuid.UUID  `json:"task_id"`
	OwnerID      uuid.UUID  `json:"owner_id"`
	Status       string     `json:"status"`
	Attempts     int        `json:"attempts"`
	MaxAttempts  int        `json:"max_attempts"`
	CreatedAt    time.Time  `json:"created_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	ProcessingMS int64      `json:"processing_ms"`
	FileCount    int        `json:"file_count"`
	Bytes        int64      `json:"bytes"`
	Error        *string    `json:"error,omitempty"`
	Result       *string    `json:"result,omitempty"`
	Files        []File     `json:"files,omitempty"`
}

// HistoryEntry is one row of task_history as the API returns it.
type HistoryEntry struct {
	TaskID       uuid.UUID  `json:"task_id"`
	Status       string     `json:"status"`
	Attempts     int        `json:"attempts"`
	MaxAttempts  int        `json:"max_attempts"`
	CreatedAt    time.Time  `json:"created_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	DeletedAt    *time.Time `json:"deleted_at,omitempty"`
	ExpiredAt    *time.Time `json:"expired_at,omitempty"`
	ProcessingMS int64      `json:"processing_ms"`
	FileCount    int        `json:"file_count"`
	Bytes        int64      `json:"bytes"`
	FileNames    []string   `json:"file_names"`
	Error        *string    `json:"error,omitempty"`
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

const taskColumns = `task_id, owner_id, status, attempts, max_attempts, created_at, started_at, finished_at, processing_ms,
	file_count, bytes, error`

func scanTask(row pgx.Row, extra ...any) (Task, error) {
	var t Task
	dest := append([]any{&t.TaskID, &t.OwnerID, &t.Status, &t.Attempts, &t.MaxAttempts, &t.CreatedAt, &t.StartedAt,
		&t.FinishedAt, &t.ProcessingMS, &t.FileCount, &t.Bytes, &t.Error}, extra...)
	if err := row.Scan(dest...); err != nil {
		return t, err
	}
	t.CreatedAt, t.StartedAt, t.FinishedAt = t.CreatedAt.UTC(), utcPtr(t.StartedAt), utcPtr(t.FinishedAt)
	return t, nil
}

const historyColumns = `task_id, status, attempts, max_attempts, created_at, started_at, finished_at, deleted_at, expired_at,
	processing_ms, file_count, bytes, file_names, error`

func scanHistory(row pgx.Row) (HistoryEntry, error) {
	var h HistoryEntry
	if err := row.Scan(&h.TaskID, &h.Status, &h.Attempts, &h.MaxAttempts, &h.CreatedAt, &h.StartedAt, &h.FinishedAt,
		&h.DeletedAt, &h.ExpiredAt, &h.ProcessingMS, &h.FileCount, &h.Bytes, &h.FileNames, &h.Error); err != nil {
		return h, err
	}
	h.CreatedAt, h.StartedAt, h.FinishedAt = h.CreatedAt.UTC(), utcPtr(h.StartedAt), utcPtr(h.FinishedAt)
	h.DeletedAt, h.ExpiredAt = utcPtr(h.DeletedAt), utcPtr(h.ExpiredAt)
	if h.FileNames == nil {
		h.FileNames = []string{}
	}
	return h, nil
}

// count counts the rows of table (TableTasks or TableHistory) matching f.
//
// Counting a user's 100,000 rows costs tens of milliseconds, more than the
// page itself, so without a text search the count comes from task_stats:
// its per-day counts by status are exactly the history rows created that
// day, and the live statuses' counts exactly the tasks rows. Whole days of
// the range are summed from there; only the partial days at its ends are
// counted from the table, through the owner's created_at index. tx must be
// a snapshot, so that both agree.
func count(ctx context.Context, tx pgx.Tx, table string, f Filter) (int64, error) {
	statuses := f.Statuses
	if len(statuses) == 0 {
		statuses = Statuses
	}
	if table == TableTasks {
		// Only live statuses are in the tasks table.
		statuses = slices.DeleteFunc(slices.Clone(statuses), func(s string) bool { return !slices.Contains(LiveStatuses, s) })
		if len(statuses) == 0 {
			return 0, nil
		}
	}
	var cols []string
	for _, s := range statuses {
		c, ok := statusColumn[s]
		if !ok {
			return 0, fmt.Errorf("unknown status %q", s)
		}
		cols = append(cols, c)
	}
	// Whole days: [fromDay, toDay).
	var fromDay, toDay time.Time
	if !f.From.IsZero() {
		fromDay = Day(f.From)
		if fromDay.Before(f.From) {
			fromDay = fromDay.AddDate(0, 0, 1)
		}
	}
	if !f.To.IsZero() {
		toDay = Day(f.To)
	}
	direct := func(g Filter) (int64, error) {
		cond, args := g.where()
		var n int64
		err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table+cond, args...).Scan(&n)
		return n, err
	}
	if f.Query != "" || (!fromDay.IsZero() && !toDay.IsZero() && !fromDay.Before(toDay)) {
		return direct(f)
	}
	args := []any{f.Owner}
	cond := "owner_id = $1"
	if !fromDay.IsZero() {
		args = append(args, fromDay)
		cond += fmt.Sprintf(" AND day >= $%d", len(args))
	}
	if !toDay.IsZero() {
		args = append(args, toDay)
		cond += fmt.Sprintf(" AND day < $%d", len(args))
	}
	var n int64
	if err := tx.QueryRow(ctx, "SELECT coalesce(sum("+strings.Join(cols, " + ")+"), 0)::bigint FROM "+TableStats+
		" WHERE "+cond, args...).Scan(&n); err != nil {
		return 0, err
	}
	if !f.From.IsZero() && f.From.Before(fromDay) {
		head := f
		head.To = fromDay
		m, err := direct(head)
		if err != nil {
			return 0, err
		}
		n += m
	}
	if !f.To.IsZero() && toDay.Before(f.To) {
		tail := f
		tail.From = toDay
		m, err := direct(tail)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

// page reads one page of a list, and how many rows match, in one read-only
// snapshot: the count is taken only when the page does not end the list.
func page[T any](ctx context.Context, pool *pgxpool.Pool, table, columns string, f Filter, s Sort, pageNo, size int,
	scan func(pgx.Row) (T, error)) ([]T, int64, error) {
	cond, args := f.where()
	items := []T{}
	var total int64
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		offset := (pageNo - 1) * size
		qargs := append(append([]any{}, args...), size, offset)
		rows, err := tx.Query(ctx, "SELECT "+columns+" FROM "+table+cond+" ORDER BY "+s.orderBy()+
			fmt.Sprintf(" LIMIT $%d OFFSET $%d", len(args)+1, len(args)+2), qargs...)
		if err != nil {
			return err
		}
		for rows.Next() {
			it, err := scan(rows)
			if err != nil {
				rows.Close()
				return err
			}
			items = append(items, it)
		}
		if rows.Close(); rows.Err() != nil {
			return rows.Err()
		}
		// A page that is not full ends the list, which gives the count
		// without counting: a search for a rare name then scans its
		// trigram index once instead of twice (most of its time). An
		// empty page after the first says nothing about the count.
		if len(items) < size && (len(items) > 0 || pageNo == 1) {
			total = int64(offset + len(items))
			return nil
		}
		total, err = count(ctx, tx, table, f)
		return err
	})
	return items, total, err
}

// ListTasks returns one page (1-based) of the owner's live tasks matching
// f, and how many match.
func ListTasks(ctx context.Context, pool *pgxpool.Pool, f Filter, s Sort, pageNo, size int) ([]Task, int64, error) {
	items, total, err := page(ctx, pool, TableTasks, taskColumns, f, s, pageNo, size, func(r pgx.Row) (Task, error) { return scanTask(r) })
	if err != nil {
		return nil, 0, fmt.Errorf("tasks: list: %w", err)
	}
	return items, total, nil
}

// ListHistory returns one page (1-based) of the owner's history (every
// task, deleted and expired ones included) matching f, and how many match.
func ListHistory(ctx context.Context, pool *pgxpool.Pool, f Filter, s Sort, pageNo, size int) ([]HistoryEntry, int64, error) {
	items, total, err := page(ctx, pool, TableHistory, historyColumns, f, s, pageNo, size, scanHistory)
	if err != nil {
		return nil, 0, fmt.Errorf("tasks: history: %w", err)
	}
	return items, total, nil
}

// EachHistory calls fn for every history row of f in order s, streaming
// them from the server (never the whole result in memory), inside one
// read-only snapshot. An error from fn stops the iteration and is returned.
func EachHistory(ctx context.Context, pool *pgxpool.Pool, f Filter, s Sort, fn func(HistoryEntry) error) error {
	cond, args := f.where()
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT "+historyColumns+" FROM "+TableHistory+cond+" ORDER BY "+s.orderBy(), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			h, err := scanHistory(rows)
			if err != nil {
				return err
			}
			if err := fn(h); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("tasks: export: %w", err)
	}
	return nil
}

// Lookup is what a read of one task by id found.
type Lookup int

// Lookup results. Callers answer all but Found with the same 404; the
// distinction is only for the audit trail.
const (
	Found    Lookup = iota
	Missing         // no task with this id ever
	NotOwner        // the task belongs to another user
	Gone            // the requester's task was deleted or expired
)

// Get returns a live task with its result and files. When asOwner is not
// uuid.Nil the task must belong to that user; uuid.Nil reads any task (an
// administrator's read, audited by the caller). The task is returned only
// with Found.
func Get(ctx context.Context, pool *pgxpool.Pool, id, asOwner uuid.UUID) (Task, Lookup, error) {
	var t Task
	var look Lookup
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var owner uuid.UUID
		got, err := scanTask(tx.QueryRow(ctx, "SELECT "+taskColumns+", result FROM "+TableTasks+" WHERE task_id = $1", id), &t.Result)
		switch {
		case err == nil:
			owner = got.OwnerID
			if asOwner != uuid.Nil && owner != asOwner {
				look = NotOwner
				return nil
			}
		case errors.Is(err, pgx.ErrNoRows):
			// Not live: tell missing from gone from another user's, for the audit trail only.
			err := tx.QueryRow(ctx, "SELECT owner_id FROM "+TableHistory+" WHERE task_id = $1", id).Scan(&owner)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				look = Missing
			case err != nil:
				return err
			case asOwner != uuid.Nil && owner != asOwner:
				look = NotOwner
			default:
				look = Gone
			}
			return nil
		default:
			return err
		}
		rows, err := tx.Query(ctx, "SELECT file_id, name, content_type, size, sha256 FROM "+TableFiles+
			" WHERE task_id = $1 AND owner_id = $2 ORDER BY ordinal", id, owner)
		if err != nil {
			return err
		}
		files, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (File, error) {
			var f File
			err := r.Scan(&f.FileID, &f.Name, &f.ContentType, &f.Size, &f.SHA256)
			return f, err
		})
		if err != nil {
			return err
		}
		got.Result, got.Files = t.Result, files
		if got.Files == nil {
			got.Files = []File{}
		}
		t, look = got, Found
		return nil
	})
	if err != nil {
		return Task{}, 0, fmt.Errorf("tasks: get: %w", err)
	}
	if look != Found {
		return Task{}, look, nil
	}
	return t, Found, nil
}

// Stats summarises an owner's tasks created on the UTC days in a range.
type Stats struct {
	Total    int64            `json:"total"`
	ByStatus map[string]int64 `json:"by_status"`
	// SuccessRate is completed / (completed + failed) over the tasks whose
	// last run ended; nil when none has.
	SuccessRate *float64 `json:"success_rate"`
	// AvgProcessingMS is the mean processing time of a run (a retried
	// task's runs all count); nil when no run ended.
	AvgProcessingMS *float64 `json:"avg_processing_ms"`
	Files           int64    `json:"files"`
	Bytes           int64    `json:"bytes"`
}

// StatsFor sums owner's task_stats over the UTC days from fromDay
// (inclusive) to toDay (exclusive); a zero bound is open.
func StatsFor(ctx context.Context, pool *pgxpool.Pool, owner uuid.UUID, fromDay, toDay time.Time) (Stats, error) {
	args := []any{owner}
	cond := "owner_id = $1"
	if !fromDay.IsZero() {
		args = append(args, Day(fromDay))
		cond += fmt.Sprintf(" AND day >= $%d", len(args))
	}
	if !toDay.IsZero() {
		args = append(args, Day(toDay))
		cond += fmt.Sprintf(" AND day < $%d", len(args))
	}
	var s Stats
	var n [7]int64
	var oc, of, ms, runs int64
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(total), 0)::bigint, coalesce(sum(n_queued), 0)::bigint,
		coalesce(sum(n_processing), 0)::bigint, coalesce(sum(n_completed), 0)::bigint, coalesce(sum(n_failed), 0)::bigint,
		coalesce(sum(n_cancelled), 0)::bigint, coalesce(sum(n_deleted), 0)::bigint, coalesce(sum(n_expired), 0)::bigint,
		coalesce(sum(outcome_completed), 0)::bigint, coalesce(sum(outcome_failed), 0)::bigint,
		coalesce(sum(processing_ms), 0)::bigint, coalesce(sum(runs), 0)::bigint,
		coalesce(sum(files), 0)::bigint, coalesce(sum(bytes), 0)::bigint
		FROM `+TableStats+` WHERE `+cond, args...).
		Scan(&s.Total, &n[0], &n[1], &n[2], &n[3], &n[4], &n[5], &n[6], &oc, &of, &ms, &runs, &s.Files, &s.Bytes)
	if err != nil {
		return Stats{}, fmt.Errorf("tasks: stats: %w", err)
	}
	s.ByStatus = make(map[string]int64, len(Statuses))
	for i, st := range Statuses {
		s.ByStatus[st] = n[i]
	}
	if oc+of > 0 {
		r := float64(oc) / float64(oc+of)
		s.SuccessRate = &r
	}
	if runs > 0 {
		a := float64(ms) / float64(runs)
		s.AvgProcessingMS = &a
	}
	return s, nil
}
