// Package timetravel rebuilds read models as they were at a moment of the
// past, from the log: into a scratch schema that stays for inspection
// (Replay, `authledger replay --until`), or inside a transaction that is
// rolled back once a query has read it (Fold, `GET
// /v1/admin/users/{id}?at=`).
//
// Both run the projections' own code (CreateTables, Begin, Apply, Flush,
// CreateIndexes), so a read model of the past has exactly the shape and
// the rules of the live one; nothing here knows a read model's columns.
// The projections name their tables without a schema (t.Ident gives
// "user_profiles_g1"), so the transaction's search_path is set to the
// scratch schema first and public second: tables and views are created in
// the scratch schema, while functions and extensions (the audit trail's
// trigger function, pg_trgm) are still found in public. Every base table
// of a replayed projection gets a view of its base name in the scratch
// schema, so the read functions (userviews.GetProfile, ...) read the past
// through the same names as the present.
//
// "At a time" means: every event of the log whose recorded time (the
// time the log committed it, not the occurred-at a client could claim) is
// at or before it, in log order. A projection receives the same events,
// in the same order, as a live runner that had stopped at that moment.
package timetravel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// Generation is the generation of the scratch tables (base_g1): a
// scratch schema holds one generation of each read model.
const Generation = 1

// pageSize is how many events one read of the log fetches.
const pageSize = 2000

var (
	// ErrBadSchema: a scratch schema name that is not a plain lower-case
	// identifier, or one of the schemas the server itself uses.
	ErrBadSchema = errors.New("timetravel: the scratch schema must match [a-z_][a-z0-9_]{0,62} and not be public or pg_*")
	// ErrSchemaExists: Replay refuses to write into a schema that exists
	// (it could be someone's data); drop it first.
	ErrSchemaExists = errors.New("timetravel: the scratch schema exists already (drop it first)")
)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CheckSchema reports whether name may be a scratch schema.
func CheckSchema(name string) error {
	if !schemaName.MatchString(name) || name == "public" || name == "information_schema" || len(name) >= 3 && name[:3] == "pg_" {
		return ErrBadSchema
	}
	return nil
}

// LogReader is the part of the event store that time travel reads: the
// log forwards, never an append (readapi answers ?at= with it).
type LogReader interface {
	ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error)
}

// Result is what Replay or Fold applied.
type Result struct {
	// Schema is the scratch schema the read models were built in.
	Schema string
	// Until is the moment replayed to.
	Until time.Time
	// Events is how many events were applied, over all projections.
	Events int64
	// Last is the position of the last event at or before Until that the
	// log read returned (the zero Position when none).
	Last eventstore.Position
}

// Replay builds the projections as they were at until into the schema
// named schema, which it creates (ErrSchemaExists when it exists), and
// commits: the schema then holds each projection's tables (base_g1) and a
// view of each base name, to be read with `SET search_path = schema` or
// schema-qualified names, and dropped when done (DROP SCHEMA schema
// CASCADE). It writes nothing outside that schema: no checkpoint, no live
// table.
func Replay(ctx context.Context, pool *pgxpool.Pool, store LogReader, projs []projector.Projection, until time.Time, schema string) (Result, error) {
	if err := CheckSchema(schema); err != nil {
		return Result{}, err
	}
	evs, err := readUntil(ctx, store, projs, until, nil)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
			return fmt.Errorf("timetravel: look for schema: %w", err)
		}
		if exists {
			return ErrSchemaExists
		}
		var err error
		res, err = build(ctx, tx, evs, projs, until, schema)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// Fold builds the projections as they were at until in a scratch schema
// of its own, inside one transaction, applying only the events keep
// accepts (nil: every event); read is then called with that transaction
// (its search_path on the scratch schema, so the read models' views name
// the past), and the transaction is rolled back whatever read returns:
// nothing of the fold stays in the database. keep lets a caller fold one
// user's events only; it must accept every event that the read models'
// rows it reads depend on.
func Fold(ctx context.Context, pool *pgxpool.Pool, store LogReader, projs []projector.Projection, until time.Time,
	keep func(eventstore.RecordedEvent) bool, read func(ctx context.Context, tx pgx.Tx) error) (Result, error) {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return Result{}, fmt.Errorf("timetravel: %w", err)
	}
	schema := "timetravel_" + hex.EncodeToString(suffix[:])
	evs, err := readUntil(ctx, store, projs, until, keep)
	if err != nil {
		return Result{}, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("timetravel: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	res, err := build(ctx, tx, evs, projs, until, schema)
	if err != nil {
		return Result{}, err
	}
	if err := read(ctx, tx); err != nil {
		return Result{}, err
	}
	return res, nil
}

// build creates schema in tx, points the transaction's search_path at it,
// and applies the log up to until to every projection.
func build(ctx context.Context, tx pgx.Tx, evs []eventstore.RecordedEvent, projs []projector.Projection, until time.Time,
	schema string) (Result, error) {
	res := Result{Schema: schema, Until: until}
	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := tx.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
		return res, fmt.Errorf("timetravel: create schema: %w", err)
	}
	// SET LOCAL: the setting ends with the transaction, so a pooled
	// connection never keeps pointing at a scratch schema.
	if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", ident+", public"); err != nil {
		return res, fmt.Errorf("timetravel: search_path: %w", err)
	}
	t := projector.Tables{Generation: Generation}
	for _, p := range projs {
		if err := p.CreateTables(ctx, tx, t); err != nil {
			return res, fmt.Errorf("timetravel: %s: %w", p.Name(), err)
		}
		n, last, err := apply(ctx, tx, evs, p, t)
		if err != nil {
			return res, fmt.Errorf("timetravel: %s: %w", p.Name(), err)
		}
		res.Events += n
		if last.Compare(res.Last) > 0 {
			res.Last = last
		}
		if ix, ok := p.(projector.Indexer); ok {
			if err := ix.CreateIndexes(ctx, tx, t); err != nil {
				return res, fmt.Errorf("timetravel: %s: %w", p.Name(), err)
			}
		}
		for _, base := range p.Tables() {
			view := pgx.Identifier{schema, base}.Sanitize()
			if _, err := tx.Exec(ctx, "CREATE VIEW "+view+" AS SELECT * FROM "+pgx.Identifier{schema, t.Name(base)}.Sanitize()); err != nil {
				return res, fmt.Errorf("timetravel: view %s: %w", base, err)
			}
		}
	}
	return res, nil
}

// readUntil reads, before any transaction of the build is open, the
// events of the projections' filters recorded at or before until that
// keep accepts, in log order. Before: the PostgreSQL store delivers no
// event past a transaction still open, and the build's own transaction
// (its DDL gives it an id) would hold the read back for ever. The events
// are held in memory meanwhile: a replay of a large log needs the room.
func readUntil(ctx context.Context, store LogReader, projs []projector.Projection, until time.Time,
	keep func(eventstore.RecordedEvent) bool) ([]eventstore.RecordedEvent, error) {
	// One read for all: the union of the filters, or everything when one
	// projection takes every event.
	var union eventstore.Filter
	for _, p := range projs {
		f := p.Filter()
		if f.IsEmpty() {
			union = eventstore.Filter{}
			break
		}
		union.EventTypes = append(union.EventTypes, f.EventTypes...)
		union.StreamPrefixes = append(union.StreamPrefixes, f.StreamPrefixes...)
	}
	if len(union.EventTypes) > 0 && len(union.StreamPrefixes) > 0 {
		// A filter matches type AND prefix: a union of both kinds cannot
		// be one filter, so read everything and sort out per projection.
		union = eventstore.Filter{}
	}
	var out []eventstore.RecordedEvent
	var after eventstore.Position
	for {
		page, err := store.ReadAll(ctx, eventstore.ReadAllOptions{After: after, Limit: pageSize, Filter: union})
		if err != nil {
			return nil, fmt.Errorf("timetravel: read the log: %w", err)
		}
		if len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1].Position
		for _, ev := range page {
			if ev.RecordedAt.After(until) || keep != nil && !keep(ev) {
				continue
			}
			out = append(out, ev)
		}
	}
}

// apply feeds p the events of its filter, in one batch.
func apply(ctx context.Context, tx pgx.Tx, evs []eventstore.RecordedEvent, p projector.Projection, t projector.Tables) (int64, eventstore.Position, error) {
	b, err := p.Begin(ctx, tx, t)
	if err != nil {
		return 0, eventstore.Position{}, err
	}
	filter := p.Filter()
	var n int64
	var last eventstore.Position
	for _, ev := range evs {
		if !filter.IsEmpty() && !filter.Matches(ev.Stream, ev.Type) {
			continue
		}
		if err := b.Apply(ctx, ev); err != nil {
			return n, last, fmt.Errorf("apply event %s (%s): %w", ev.ID, ev.Type, err)
		}
		last = ev.Position
		n++
	}
	if err := b.Flush(ctx); err != nil {
		return n, last, err
	}
	return n, last, nil
}
