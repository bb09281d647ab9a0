// Package tasks is the read side of issue 6: one projection, named "tasks",
// that builds four read models from the task streams:
//
//   - tasks: the live tasks (neither deleted nor expired) with their current
//     state, result text, attempts and timings. The worker's Queue reads it.
//   - task_files: the files of live tasks (a deleted or expired task's rows
//     go with it, so the blob collector sees only referenced blobs).
//   - task_history: every task ever, deleted and expired ones included, with
//     created/started/finished times, total processing time and the file
//     names (for text search).
//   - task_stats: per owner and UTC day of creation, the tasks by current
//     status, the completed/failed outcomes (success rate), the processing
//     time sum and run count, the files and the bytes.
//
// The tables are generation-versioned (projections/projector); queries go
// through the views named after the base tables.
//
// # Why stats are keyed by creation day
//
// A task is counted on the UTC day it was created and moves between status
// columns of that day's row as it changes. Stats over a date range are then
// exactly the history rows created in that range (whole days), grouped, and
// totals never count a task twice.
//
// # Indexes
//
// Every index a user-facing query uses starts with owner_id and ends with
// (created_at DESC, task_id DESC), the list order, so a page of one user's
// history is an index range scan that stops after page_size rows. The
// exceptions are the primary keys (task_id: the projection updates by it)
// and the worker's global queue indexes, which are partial. Text search is
// ILIKE over the file names; when the pg_trgm extension is available
// (installed, or creatable by the projection's role), a trigram GIN index
// serves it, otherwise the owner's index scan filters the rows.
package taskviews

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// Name is the projection's name (its checkpoint and the name the
// consistency middleware waits for). Renaming it rebuilds the read models
// from the start of the log.
const Name = "tasks"

// Base names of the read-model tables, which are also the views queries use.
const (
	TableTasks   = "tasks"
	TableFiles   = "task_files"
	TableHistory = "task_history"
	TableStats   = "task_stats"
)

// Task statuses, as the read models and the API spell them.
// (domain/task's Status values as plain strings).
const (
	StatusQueued     = string(task.StatusQueued)
	StatusProcessing = string(task.StatusProcessing)
	StatusCompleted  = string(task.StatusCompleted)
	StatusFailed     = string(task.StatusFailed)
	StatusCancelled  = string(task.StatusCancelled)
	StatusDeleted    = string(task.StatusDeleted)
	StatusExpired    = string(task.StatusExpired)
)

// Statuses lists every status, in lifecycle order.
var Statuses = []string{StatusQueued, StatusProcessing, StatusCompleted, StatusFailed, StatusCancelled, StatusDeleted, StatusExpired}

// LiveStatuses are the statuses a task in the tasks table can have.
var LiveStatuses = []string{StatusQueued, StatusProcessing, StatusCompleted, StatusFailed, StatusCancelled}

// statusColumn is the task_stats column counting a status. Only these
// constant names are ever interpolated into SQL.
var statusColumn = map[string]string{
	StatusQueued: "n_queued", StatusProcessing: "n_processing", StatusCompleted: "n_completed",
	StatusFailed: "n_failed", StatusCancelled: "n_cancelled", StatusDeleted: "n_deleted", StatusExpired: "n_expired",
}

// Projection is the tasks projection.
type Projection struct {
	// reg decodes the task events, upcasting old versions (ARCHITECTURE.md
	// rule 7): the projection never reads event JSON itself.
	reg *events.Registry
}

// New returns the tasks projection.
func New() *Projection {
	reg := events.NewRegistry()
	// user.erased.v1 too: an erasure blanks the owner's file names and
	// results (ADR 0034).
	if err := errors.Join(task.RegisterEvents(reg), reg.Register(user.Erased{})); err != nil {
		// The task events are a constant table: two types under one name
		// is a programming error, caught by every test.
		panic(err)
	}
	return &Projection{reg: reg}
}

var (
	_ projector.Projection = (*Projection)(nil)
	_ projector.Indexer    = (*Projection)(nil)
)

// Name implements projector.Projection.
func (*Projection) Name() string { return Name }

// Filter implements projector.Projection: the task streams' events, and
// the user streams' for erasures (the other user events decode as
// unknown and change nothing).
func (*Projection) Filter() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: []string{task.StreamPrefix, user.StreamPrefix}}
}

// Tables implements projector.Projection.
func (*Projection) Tables() []string {
	return []string{TableTasks, TableFiles, TableHistory, TableStats}
}

// CreateTables implements projector.Projection: the tables and the keys the
// projection itself updates by (the secondary indexes come in
// CreateIndexes, after a rebuild's bulk load).
func (*Projection) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	stmts := []string{
		`CREATE TABLE ` + t.Ident(TableTasks) + ` (
			task_id       uuid        PRIMARY KEY,
			owner_id      uuid        NOT NULL,
			status        text        NOT NULL,
			max_attempts  integer     NOT NULL,
			attempts      integer     NOT NULL DEFAULT 0,
			created_at    timestamptz NOT NULL,
			queued_at     timestamptz NOT NULL,
			started_at    timestamptz,
			finished_at   timestamptz,
			lease_until   timestamptz,
			worker_id     text,
			result        text,
			error         text,
			processing_ms bigint      NOT NULL DEFAULT 0,
			file_count    integer     NOT NULL DEFAULT 0,
			bytes         bigint      NOT NULL DEFAULT 0,
			search        text        NOT NULL DEFAULT '',
			updated_at    timestamptz NOT NULL,
			revision      bigint      NOT NULL
		)`,
		`CREATE TABLE ` + t.Ident(TableFiles) + ` (
			task_id      uuid   NOT NULL,
			file_id      uuid   NOT NULL,
			owner_id     uuid   NOT NULL,
			ordinal      bigint NOT NULL,
			name         text   NOT NULL,
			content_type text   NOT NULL,
			size         bigint NOT NULL,
			sha256       text   NOT NULL,
			PRIMARY KEY (task_id, file_id)
		)`,
		`CREATE TABLE ` + t.Ident(TableHistory) + ` (
			task_id       uuid        PRIMARY KEY,
			owner_id      uuid        NOT NULL,
			day           date        NOT NULL,
			status        text        NOT NULL,
			outcome       text        NOT NULL DEFAULT '',
			max_attempts  integer     NOT NULL,
			attempts      integer     NOT NULL DEFAULT 0,
			runs          integer     NOT NULL DEFAULT 0,
			created_at    timestamptz NOT NULL,
			started_at    timestamptz,
			finished_at   timestamptz,
			deleted_at    timestamptz,
			expired_at    timestamptz,
			processing_ms bigint      NOT NULL DEFAULT 0,
			file_count    integer     NOT NULL DEFAULT 0,
			bytes         bigint      NOT NULL DEFAULT 0,
			file_names    text[]      NOT NULL DEFAULT '{}',
			search        text        NOT NULL DEFAULT '',
			error         text
		)`,
		`CREATE TABLE ` + t.Ident(TableStats) + ` (
			owner_id          uuid   NOT NULL,
			day               date   NOT NULL,
			total             bigint NOT NULL DEFAULT 0,
			n_queued          bigint NOT NULL DEFAULT 0,
			n_processing      bigint NOT NULL DEFAULT 0,
			n_completed       bigint NOT NULL DEFAULT 0,
			n_failed          bigint NOT NULL DEFAULT 0,
			n_cancelled       bigint NOT NULL DEFAULT 0,
			n_deleted         bigint NOT NULL DEFAULT 0,
			n_expired         bigint NOT NULL DEFAULT 0,
			outcome_completed bigint NOT NULL DEFAULT 0,
			outcome_failed    bigint NOT NULL DEFAULT 0,
			processing_ms     bigint NOT NULL DEFAULT 0,
			runs              bigint NOT NULL DEFAULT 0,
			files             bigint NOT NULL DEFAULT 0,
			bytes             bigint NOT NULL DEFAULT 0,
			PRIMARY KEY (owner_id, day)
		)`,
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("tasks: create tables: %w", err)
		}
	}
	return nil
}

// CreateIndexes implements projector.Indexer.
func (*Projection) CreateIndexes(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	ix := func(table, suffix string) string { return pgx.Identifier{t.Name(table) + "_" + suffix}.Sanitize() }
	tt, tf, th := t.Ident(TableTasks), t.Ident(TableFiles), t.Ident(TableHistory)
	stmts := []string{
		`CREATE INDEX ` + ix(TableTasks, "owner_created") + ` ON ` + tt + ` (owner_id, created_at DESC, task_id DESC)`,
		`CREATE INDEX ` + ix(TableTasks, "owner_status") + ` ON ` + tt + ` (owner_id, status, created_at DESC, task_id DESC)`,
		// The worker's global queries: small partial indexes.
		`CREATE INDEX ` + ix(TableTasks, "queued") + ` ON ` + tt + ` (queued_at, task_id) WHERE status = 'queued'`,
		`CREATE INDEX ` + ix(TableTasks, "lease") + ` ON ` + tt + ` (lease_until) WHERE status = 'processing'`,
		`CREATE INDEX ` + ix(TableTasks, "created") + ` ON ` + tt + ` (created_at)`,
		`CREATE INDEX ` + ix(TableFiles, "sha256") + ` ON ` + tf + ` (sha256)`,
		`CREATE INDEX ` + ix(TableHistory, "owner_created") + ` ON ` + th + ` (owner_id, created_at DESC, task_id DESC)`,
		`CREATE INDEX ` + ix(TableHistory, "owner_status") + ` ON ` + th + ` (owner_id, status, created_at DESC, task_id DESC)`,
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("tasks: create indexes: %w", err)
		}
	}
	ok, err := ensureTrigram(ctx, tx)
	if err != nil {
		return err
	}
	if ok {
		for _, table := range []string{TableTasks, TableHistory} {
			if _, err := tx.Exec(ctx, `CREATE INDEX `+ix(table, "search")+` ON `+t.Ident(table)+` USING gin (search gin_trgm_ops)`); err != nil {
				return fmt.Errorf("tasks: create trigram index: %w", err)
			}
		}
	}
	return nil
}

// ensureTrigram reports whether pg_trgm is installed, installing it when
// the server has it and the role may (it is a trusted extension: a database
// owner may). Failing to install is not an error: search then filters the
// owner's rows without the index.
func ensureTrigram(ctx context.Context, tx pgx.Tx) (bool, error) {
	var installed, available bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'),
		EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm')`).Scan(&installed, &available)
	if err != nil {
		return false, fmt.Errorf("tasks: look for pg_trgm: %w", err)
	}
	if installed || !available {
		return installed, nil
	}
	// A savepoint: a refused CREATE EXTENSION must not abort the transaction.
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	if _, err := sp.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_trgm"); err != nil {
		_ = sp.Rollback(ctx)
		return false, nil
	}
	return true, sp.Commit(ctx)
}

// Begin implements projector.Projection.
func (p *Projection) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	return &batch{
		reg: p.reg, tx: tx, tasks: t.Ident(TableTasks), files: t.Ident(TableFiles),
		history: t.Ident(TableHistory), stats: t.Ident(TableStats),
	}, nil
}

// batch writes each event straight into the transaction: the events of one
// task depend on each other's rows, and per-task volume is small.
type batch struct {
	reg                          *events.Registry
	tx                           pgx.Tx
	tasks, files, history, stats string
}

// Flush implements projector.Batch (nothing is buffered).
func (*batch) Flush(context.Context) error { return nil }

// Apply implements projector.Batch.
func (b *batch) Apply(ctx context.Context, ev eventstore.RecordedEvent) error {
	decoded, err := b.reg.Decode(ev.Type, ev.Data)
	if unknown := (events.ErrUnknownEvent{}); errors.As(err, &unknown) {
		// Other events on task streams (none today) do not change the read models.
		return nil
	}
	if err == nil {
		switch e := decoded.(type) {
		case task.Created:
			err = b.created(ctx, ev, e)
		case task.FileAttached:
			err = b.fileAttached(ctx, ev, e)
		case task.Claimed:
			err = b.claimed(ctx, ev, e)
		case task.ClaimRenewed:
			err = b.renewed(ctx, ev, e)
		case task.ClaimReleased:
			err = b.released(ctx, ev, e)
		case task.Completed:
			err = b.completed(ctx, ev, e)
		case task.Failed:
			err = b.failed(ctx, ev, e)
		case task.Retried:
			err = b.retried(ctx, ev, e)
		case task.Cancelled:
			err = b.cancelled(ctx, ev, e)
		case task.Deleted:
			err = b.removed(ctx, e.TaskID, at(e.DeletedAt, ev), StatusDeleted)
		case task.Expired:
			err = b.removed(ctx, e.TaskID, at(e.ExpiredAt, ev), StatusExpired)
		case user.Erased:
			err = b.erased(ctx, e.UserID)
		}
	}
	if err != nil {
		return fmt.Errorf("tasks: apply %s %s (%s@%d): %w", ev.Type, ev.ID, ev.Stream, ev.Revision, err)
	}
	return nil
}

// at is an event's own time, or the log's when the event has none, in the
// precision PostgreSQL stores (so a rebuild reproduces the same rows).
func at(t time.Time, ev eventstore.RecordedEvent) time.Time {
	if t.IsZero() {
		t = ev.RecordedAt
	}
	return t.UTC().Truncate(time.Microsecond)
}

// text makes client- or processor-supplied text storable: PostgreSQL text
// refuses NUL and invalid UTF-8, and a refused row would stop the projection.
func text(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// maxErrorLen bounds a stored error message.
const maxErrorLen = 2000

func errText(s string) string {
	s = text(s)
	if len(s) > maxErrorLen {
		cut := maxErrorLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// Day is the UTC day a task created at t is counted on in task_stats.
func Day(t time.Time) time.Time {
	u := t.UTC()
	return time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
}

func (b *batch) created(ctx context.Context, ev eventstore.RecordedEvent, e task.Created) (err error) {
	created := at(e.CreatedAt, ev)
	if _, err := b.tx.Exec(ctx, `INSERT INTO `+b.tasks+` (task_id, owner_id, status, max_attempts, created_at, queued_at, updated_at, revision)
		VALUES ($1, $2, $3, $4, $5, $5, $5, $6)`, e.TaskID, e.OwnerID, StatusQueued, e.MaxAttempts, created, int64(ev.Revision)); err != nil {
		return err
	}
	if _, err := b.tx.Exec(ctx, `INSERT INTO `+b.history+` (task_id, owner_id, day, status, max_attempts, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, e.TaskID, e.OwnerID, Day(created), StatusQueued, e.MaxAttempts, created); err != nil {
		return err
	}
	_, err = b.tx.Exec(ctx, `INSERT INTO `+b.stats+` (owner_id, day, total, n_queued) VALUES ($1, $2, 1, 1)
		ON CONFLICT (owner_id, day) DO UPDATE SET total = `+b.stats+`.total + 1, n_queued = `+b.stats+`.n_queued + 1`,
		e.OwnerID, Day(created))
	return err
}

// histState is what a transition needs from the task's history row.
type histState struct {
	owner   uuid.UUID
	day     time.Time
	status  string
	outcome string
}

var errUnknownTask = errors.New("no task.created.v1 for this task was applied")

func (b *batch) state(ctx context.Context, id uuid.UUID) (histState, error) {
	var s histState
	err := b.tx.QueryRow(ctx, `SELECT owner_id, day, status, outcome FROM `+b.history+` WHERE task_id = $1`, id).
		Scan(&s.owner, &s.day, &s.status, &s.outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, errUnknownTask
	}
	return s, err
}

// statsDelta is a change to one task_stats row.
type statsDelta struct {
	from, to         string // status change ("" for none)
	outcomeFrom      string
	outcomeTo        string
	processingMS     int64
	runs, files      int64
	bytes            int64
	outcomeChanged   bool
	statusTransition bool
}

func (b *batch) applyStats(ctx context.Context, s histState, d statsDelta) error {
	var sets []string
	if d.statusTransition && d.from != d.to {
		fc, ok1 := statusColumn[d.from]
		tc, ok2 := statusColumn[d.to]
		if !ok1 || !ok2 {
			return fmt.Errorf("unknown status %q or %q", d.from, d.to)
		}
		sets = append(sets, fc+" = "+fc+" - 1", tc+" = "+tc+" + 1")
	}
	if d.outcomeChanged && d.outcomeFrom != d.outcomeTo {
		for _, o := range []struct {
			name  string
			delta string
		}{{d.outcomeFrom, "- 1"}, {d.outcomeTo, "+ 1"}} {
			switch o.name {
			case StatusCompleted:
				sets = append(sets, "outcome_completed = outcome_completed "+o.delta)
			case StatusFailed:
				sets = append(sets, "outcome_failed = outcome_failed "+o.delta)
			}
		}
	}
	args := []any{s.owner, s.day}
	add := func(col string, v int64) {
		if v != 0 {
			args = append(args, v)
			sets = append(sets, fmt.Sprintf("%s = %s + $%d", col, col, len(args)))
		}
	}
	add("processing_ms", d.processingMS)
	add("runs", d.runs)
	add("files", d.files)
	add("bytes", d.bytes)
	if len(sets) == 0 {
		return nil
	}
	tag, err := b.tx.Exec(ctx, `UPDATE `+b.stats+` SET `+strings.Join(sets, ", ")+` WHERE owner_id = $1 AND day = $2`, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("no stats row for owner %s on %s", s.owner, s.day.Format(time.DateOnly))
	}
	return nil
}

func (b *batch) fileAttached(ctx context.Context, ev eventstore.RecordedEvent, e task.FileAttached) (err error) {
	s, err := b.state(ctx, e.TaskID)
	if err != nil {
		return err
	}
	name := text(e.Name)
	search := strings.ToLower(name)
	if _, err := b.tx.Exec(ctx, `INSERT INTO `+b.files+` (task_id, file_id, owner_id, ordinal, name, content_type, size, sha256)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.TaskID, e.FileID, s.owner, int64(ev.Revision), name, text(e.ContentType), e.Size, text(e.SHA256)); err != nil {
		return err
	}
	// Names are joined with a newline, which a sanitised file name does not
	// hold, so a search never matches across two names.
	if _, err := b.tx.Exec(ctx, `UPDATE `+b.tasks+` SET file_count = file_count + 1, bytes = bytes + $2,
		search = CASE WHEN search = '' THEN $3::text ELSE search || E'\n' || $3::text END, revision = $4 WHERE task_id = $1`,
		e.TaskID, e.Size, search, int64(ev.Revision)); err != nil {
		return err
	}
	if _, err := b.tx.Exec(ctx, `UPDATE `+b.history+` SET file_count = file_count + 1, bytes = bytes + $2,
		file_names = array_append(file_names, $3::text), search = CASE WHEN search = '' THEN $4::text ELSE search || E'\n' || $4::text END
		WHERE task_id = $1`, e.TaskID, e.Size, name, search); err != nil {
		return err
	}
	return b.applyStats(ctx, s, statsDelta{files: 1, bytes: e.Size})
}

// transition moves a task to status, updating the stats row; extra is
// applied to both the tasks row (when live) and the history row.
func (b *batch) transition(ctx context.Context, id uuid.UUID, status string, d statsDelta) (histState, error) {
	s, err := b.state(ctx, id)
	if err != nil {
		return s, err
	}
	if status != "" {
		d.statusTransition, d.from, d.to = true, s.status, status
	}
	d.outcomeFrom = s.outcome
	if !d.outcomeChanged {
		d.outcomeTo = s.outcome
	}
	return s, b.applyStats(ctx, s, d)
}

func (b *batch) claimed(ctx context.Context, ev eventstore.RecordedEvent, e task.Claimed) (err error) {
	if _, err := b.transition(ctx, e.TaskID, StatusProcessing, statsDelta{}); err != nil {
		return err
	}
	started := at(e.ClaimedAt, ev)
	if _, err := b.tx.Exec(ctx, `UPDATE `+b.tasks+` SET status = $2, attempts = $3, worker_id = $4, lease_until = $5,
		started_at = $6, finished_at = NULL, error = NULL, updated_at = $6, revision = $7 WHERE task_id = $1`,
		e.TaskID, StatusProcessing, e.Attempt, text(e.WorkerID), e.LeaseUntil.UTC(), started, int64(ev.Revision)); err != nil {
		return err
	}
	_, err = b.tx.Exec(ctx, `UPDATE `+b.history+` SET status = $2, attempts = $3, started_at = $4, finished_at = NULL
		WHERE task_id = $1`, e.TaskID, StatusProcessing, e.Attempt, started)
	return err
}

func (b *batch) renewed(ctx context.Context, ev eventstore.RecordedEvent, e task.ClaimRenewed) (err error) {
	_, err = b.tx.Exec(ctx, `UPDATE `+b.tasks+` SET lease_until = $2, updated_at = $3, revision = $4 WHERE task_id = $1`,
		e.TaskID, e.LeaseUntil.UTC(), at(e.RenewedAt, ev), int64(ev.Revision))
	return err
}

func (b *batch) released(ctx context.Context, ev eventstore.RecordedEvent, e task.ClaimReleased) (err error) {
	if _, err := b.transition(ctx, e.TaskID, StatusQueued, statsDelta{}); err != nil {
		return err
	}
	when := at(e.ReleasedAt, ev)
	refund := 0
	if e.AttemptRefunded {
		refund = 1 // given back by the worker: the attempt does not count
	}
	if _, err := b.tx.Exec(ctx, `UPDATE `+b.tasks+` SET status = $2, worker_id = NULL, lease_until = NULL, queued_at = $3,
		updated_at = $3, revision = $4, attempts = GREATEST(attempts - $5, 0) WHERE task_id = $1`, e.TaskID, StatusQueued, when, int64(ev.Revision), refund); err != nil {
		return err
	}
	_, err = b.tx.Exec(ctx, `UPDATE `+b.history+` SET status = $2, attempts = GREATEST(attempts - $3, 0) WHERE task_id = $1`, e.TaskID, StatusQueued, refund)
	return err
}

func (b *batch) completed(ctx context.Context, ev eventstore.RecordedEvent, e task.Completed) (err error) {
	if _, err := b.transition(ctx, e.TaskID, StatusCompleted, statsDelta{
		outcomeChanged: true, outcomeTo: StatusCompleted, processingMS: e.ProcessingMS, runs: 1,
	}); err != nil {
		return err
	}
	when := at(e.CompletedAt, ev)
	if _, err := b.tx.Exec(ctx, `UPDATE `+b.tasks+` SET status = $2, result = $3, error = NULL, finished_at = $4, lease_until = NULL,
		processing_ms = processing_ms + $5, updated_at = $4, revision = $6 WHERE task_id = $1`,
		e.TaskID, StatusCompleted, text(e.Result), when, e.ProcessingMS, int64(ev.Revision)); err != nil {
		return err
	}
	_, err = b.tx.Exec(ctx, `UPDATE `+b.history+` SET status = $2, outcome = $2, error = NULL, finished_at = $3,
		processing_ms = processing_ms + $4, runs = runs + 1 WHERE task_id = $1`, e.TaskID, StatusCompleted, when, e.ProcessingMS)
	return err
}

func (b *batch) failed(ctx context.Context, ev eventstore.RecordedEvent, e task.Failed) (err error) {
	if _, err := b.transition(ctx, e.TaskID, StatusFailed, statsDelta{
		outcomeChanged: true, outcomeTo: StatusFailed, processingMS: e.ProcessingMS, runs: 1,
	}); err != nil {
		return err
	}
	when := at(e.FailedAt, ev)
	msg := errText(e.Error)
	if _, err := b.tx.Exec(ctx, `UPDATE `+b.tasks+` SET status = $2, error = $3, finished_at = $4, lease_until = NULL,
		attempts = GREATEST(attempts, $5), processing_ms = processing_ms + $6, updated_at = $4, revision = $7 WHERE task_id = $1`,
		e.TaskID, StatusFailed, msg, when, e.Attempt, e.ProcessingMS, int64(ev.Revision)); err != nil {
		return err
	}
	_, err = b.tx.Exec(ctx, `UPDATE `+b.history+` SET status = $2, outcome = $2, error = $3, finished_at = $4,
		attempts = GREATEST(attempts, $5), processing_ms = processing_ms + $6, runs = runs + 1 WHERE task_id = $1`,
		e.TaskID, StatusFailed, msg, when, e.Attempt, e.ProcessingMS)
	return err
}

func (b *batch) retried(ctx context.Context, ev eventstore.RecordedEvent, e task.Retried) (err error) {
	// A retried task has no outcome until its next run ends.
	if _, err := b.transition(ctx, e.TaskID, StatusQueued, statsDelta{outcomeChanged: true, outcomeTo: ""}); err != nil {
		return err
	}
	when := at(e.RetriedAt, ev)
	if _, err := b.tx.Exec(ctx, `UPDATE `+b.tasks+` SET status = $2, queued_at = $3, worker_id = NULL, lease_until = NULL,
		updated_at = $3, revision = $4 WHERE task_id = $1`, e.TaskID, StatusQueued, when, int64(ev.Revision)); err != nil {
		return err
	}
	_, err = b.tx.Exec(ctx, `UPDATE `+b.history+` SET status = $2, outcome = '' WHERE task_id = $1`, e.TaskID, StatusQueued)
	return err
}

func (b *batch) cancelled(ctx context.Context, ev eventstore.RecordedEvent, e task.Cancelled) (err error) {
	if _, err := b.transition(ctx, e.TaskID, StatusCancelled, statsDelta{}); err != nil {
		return err
	}
	when := at(e.CancelledAt, ev)
	if _, err := b.tx.Exec(ctx, `UPDATE `+b.tasks+` SET status = $2, finished_at = $3, worker_id = NULL, lease_until = NULL,
		updated_at = $3, revision = $4 WHERE task_id = $1`, e.TaskID, StatusCancelled, when, int64(ev.Revision)); err != nil {
		return err
	}
	_, err = b.tx.Exec(ctx, `UPDATE `+b.history+` SET status = $2, finished_at = $3 WHERE task_id = $1`, e.TaskID, StatusCancelled, when)
	return err
}

// removed ends a task for good (deleted or expired): it leaves the live
// tables, and its files with it; history keeps the row.
// erased blanks what the owner's tasks hold of their personal data (file
// names, OCR text and the search text made of both); the counts stay.
func (b *batch) erased(ctx context.Context, owner uuid.UUID) error {
	for _, stmt := range []string{
		`UPDATE ` + b.tasks + ` SET result = NULL, search = '' WHERE owner_id = $1`,
		`UPDATE ` + b.files + ` SET name = '' WHERE owner_id = $1`,
		`UPDATE ` + b.history + ` SET file_names = '{}', search = '' WHERE owner_id = $1`,
	} {
		if _, err := b.tx.Exec(ctx, stmt, owner); err != nil {
			return err
		}
	}
	return nil
}

func (b *batch) removed(ctx context.Context, id uuid.UUID, when time.Time, status string) error {
	if _, err := b.transition(ctx, id, status, statsDelta{}); err != nil {
		return err
	}
	if _, err := b.tx.Exec(ctx, `DELETE FROM `+b.files+` WHERE task_id = $1`, id); err != nil {
		return err
	}
	if _, err := b.tx.Exec(ctx, `DELETE FROM `+b.tasks+` WHERE task_id = $1`, id); err != nil {
		return err
	}
	col := "deleted_at"
	if status == StatusExpired {
		col = "expired_at"
	}
	_, err := b.tx.Exec(ctx, `UPDATE `+b.history+` SET status = $2, `+col+` = $3 WHERE task_id = $1`, id, status, when)
	return err
}
