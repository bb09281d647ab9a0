package projector

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
)

// States of a projection, as the checkpoint row and Status report them.
const (
	// StateIdle: set up, no runner has started it yet (or it was stopped).
	StateIdle = "idle"
	// StateRunning: a runner holds the projection's lock and applies events.
	StateRunning = "running"
	// StateRetrying: the last batch failed; the runner retries with backoff.
	StateRetrying = "retrying"
	// StateFailed: an event could not be applied after every attempt; the
	// projection is stopped until a runner is restarted.
	StateFailed = "failed"
	// StateStandby: another instance holds the projection's lock (in-process
	// state only; the row shows the owner's state).
	StateStandby = "standby"
	// StateStopped: the runner stopped on request.
	StateStopped = "stopped"
)

// checkpoint is a projection's progress in one generation.
type checkpoint struct {
	Generation     int
	Position       eventstore.Position
	EventsApplied  int64
	LastEventID    *uuid.UUID
	LastRecordedAt *time.Time
}

// sink is where a subscription keeps its checkpoint: the live row of
// projection_checkpoints, or the projection_rebuilds row of a rebuild.
type sink struct {
	table string // projection_checkpoints or projection_rebuilds
	name  string
}

var errStale = errors.New("projections: checkpoint moved under the runner (another instance or a rebuild swap)")

func (s sink) load(ctx context.Context, q querier) (checkpoint, error) {
	var cp checkpoint
	var pos string
	err := q.QueryRow(ctx, "SELECT generation, position, events_applied, last_event_id, last_recorded_at FROM "+s.table+" WHERE name = $1", s.name).
		Scan(&cp.Generation, &pos, &cp.EventsApplied, &cp.LastEventID, &cp.LastRecordedAt)
	if err != nil {
		return cp, fmt.Errorf("load checkpoint of %s: %w", s.name, err)
	}
	cp.Position, err = eventstore.ParsePosition(pos)
	if err != nil {
		return cp, fmt.Errorf("checkpoint of %s: %q: %w", s.name, pos, err)
	}
	return cp, nil
}

// save writes cp in the batch transaction if the row still holds prev (same
// generation and position): otherwise another instance or a rebuild swap
// moved it, and the batch must roll back (errStale). A concurrent swap holds
// the row lock; this UPDATE waits for it and then sees the moved row.
// Checking here, at the end of the batch, rather than locking the row at its
// start keeps the transaction without a transaction id (and so without
// holding back the event store's subscribers) until it writes.
func (s sink) save(ctx context.Context, tx pgx.Tx, prev, cp checkpoint) error {
	tag, err := tx.Exec(ctx, "UPDATE "+s.table+` SET position = $2, events_applied = $3, last_event_id = $4,
		last_recorded_at = $5, updated_at = now() WHERE name = $1 AND generation = $6 AND position = $7`,
		s.name, cp.Position.String(), cp.EventsApplied, cp.LastEventID, cp.LastRecordedAt, prev.Generation, prev.Position.String())
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return errStale
	}
	return nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func liveSink(name string) sink    { return sink{table: "projection_checkpoints", name: name} }
func rebuildSink(name string) sink { return sink{table: "projection_rebuilds", name: name} }

// lockKey is the advisory lock key of a projection's runner ("live") or of
// its rebuild ("rebuild").
const lockKeySQL = "hashtextextended('authledger.projection:' || $1 || ':' || $2, 0)"

// Setup makes sure every projection has a checkpoint row and the tables and
// views of its serving generation (generation 1 the first time). It is
// idempotent and safe to run from several processes at once. Runner and
// Rebuild call it; a server that serves queries before its runner starts
// should call it first.
func Setup(ctx context.Context, pool *pgxpool.Pool, ps ...Projection) error {
	for _, p := range ps {
		if err := setupOne(ctx, pool, p); err != nil {
			return fmt.Errorf("projections: set up %s: %w", p.Name(), err)
		}
	}
	return nil
}

func setupOne(ctx context.Context, pool *pgxpool.Pool, p Projection) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock("+lockKeySQL+")", p.Name(), "setup"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name, generation, position, state)
			VALUES ($1, 1, $2, $3) ON CONFLICT (name) DO NOTHING`, p.Name(), eventstore.Position{}.String(), StateIdle)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		t := Tables{Generation: 1}
		if err := p.CreateTables(ctx, tx, t); err != nil {
			return err
		}
		if ix, ok := p.(Indexer); ok {
			if err := ix.CreateIndexes(ctx, tx, t); err != nil {
				return err
			}
		}
		return publishViews(ctx, tx, p, t)
	})
}

// publishViews points the views named after the base tables at generation t.
func publishViews(ctx context.Context, tx pgx.Tx, p Projection, t Tables) error {
	for _, base := range p.Tables() {
		v := pgx.Identifier{base}.Sanitize()
		if _, err := tx.Exec(ctx, "DROP VIEW IF EXISTS "+v); err != nil {
			return fmt.Errorf("drop view %s: %w", base, err)
		}
		if _, err := tx.Exec(ctx, "CREATE VIEW "+v+" AS SELECT * FROM "+t.Ident(base)); err != nil {
			return fmt.Errorf("create view %s: %w", base, err)
		}
	}
	return nil
}

// dropStaleGenerations drops the physical tables of generations that
// neither serve (projection_checkpoints) nor are being rebuilt
// (projection_rebuilds). It gives up quietly on a lock timeout (a reader of
// an old generation), leaving the tables for the next call.
func dropStaleGenerations(ctx context.Context, pool *pgxpool.Pool, p Projection) error {
	var live int
	var rebuilding *int
	err := pool.QueryRow(ctx, `SELECT c.generation, r.generation FROM projection_checkpoints c
		LEFT JOIN projection_rebuilds r ON r.name = c.name WHERE c.name = $1`, p.Name()).Scan(&live, &rebuilding)
	if err != nil {
		return err
	}
	for _, base := range p.Tables() {
		rows, err := pool.Query(ctx, `SELECT table_name::text FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name LIKE $1`, base+"\\_g%")
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		re := regexp.MustCompile("^" + regexp.QuoteMeta(base) + `_g([0-9]+)$`)
		for _, n := range names {
			m := re.FindStringSubmatch(n)
			if m == nil {
				continue
			}
			g, _ := strconv.Atoi(m[1])
			if g == live || (rebuilding != nil && g == *rebuilding) {
				continue
			}
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '2s'"); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{n}.Sanitize())
				return err
			})
			if err != nil {
				return fmt.Errorf("drop %s: %w", n, err)
			}
		}
	}
	return nil
}

// setState records the runner's view of a projection in its checkpoint row
// (outside any batch, so that it survives a rolled-back batch).
func setState(ctx context.Context, pool *pgxpool.Pool, name, state string, fail *failure) error {
	var err error
	switch {
	case fail != nil && fail.EventID == uuid.Nil:
		// Not an event's failure: the store or the database is away.
		_, err = pool.Exec(ctx, `UPDATE projection_checkpoints SET state = $2, last_error = $3, failed_event_id = NULL,
			failed_event_type = NULL, failed_position = NULL, updated_at = now() WHERE name = $1`, name, state, fail.Err.Error())
	case fail != nil:
		_, err = pool.Exec(ctx, `UPDATE projection_checkpoints SET state = $2, last_error = $3, failed_event_id = $4,
			failed_event_type = $5, failed_position = $6, updated_at = now() WHERE name = $1`,
			name, state, fail.Err.Error(), fail.EventID, fail.EventType, fail.Position.String())
	default:
		_, err = pool.Exec(ctx, `UPDATE projection_checkpoints SET state = $2, last_error = NULL, failed_event_id = NULL,
			failed_event_type = NULL, failed_position = NULL, updated_at = now() WHERE name = $1`, name, state)
	}
	return err
}

// failure describes the event a projection could not apply, or (EventID
// nil) the outage it is retrying through.
type failure struct {
	EventID   uuid.UUID
	EventType string
	Position  eventstore.Position
	Err       error
}
