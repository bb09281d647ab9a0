// Package pg is the PostgreSQL adapter of the eventstore port, the embedded
// default: the log lives in the same database as the read models.
//
// # Ordering
//
// A row of the log (table events) is positioned by (tx_id, seq): the id of
// the transaction that wrote it and a sequence number. Sequence numbers alone
// cannot order a log that concurrent transactions append to: a later number
// can commit first, and a reader that moved past it would never see the
// earlier one. Readers of $all therefore only read rows whose tx_id is below
// the oldest transaction still running (the xmin horizon): every such
// transaction has finished, so nothing can appear behind a position once it
// has been read. A per-stream guard keeps each stream's revisions increasing
// in that order: the unique (stream, revision) index excludes concurrent
// writers of a stream, and an append refuses a stream last written by a
// later transaction (see appendSQL and AppendTx; docs/adr/0004).
//
// # Appends
//
// Concurrent Append calls share a statement and a commit (group commit, see
// batcher); each returns only once its own events are durable. A tombstone
// is a row of the reserved type $tombstone after the stream's last revision;
// readers of $all skip it.
//
// # Subscriptions
//
// A subscription reads $all on its own (its filter in SQL) until it has
// caught up, then follows the Store's tail: one reader of the end of the
// log per Store, woken by this Store's appends, by NOTIFY from other
// processes and by the poll interval, whose pages every caught-up
// subscription filters in Go. An append therefore costs one read of $all
// however many subscriptions the process runs (see tail).
//
// Known costs: a writing transaction left open holds every subscriber of
// the database back (the pool sets idle_in_transaction_session_timeout);
// and a logical dump restored into a new cluster breaks xid order, which
// Open detects and refuses.
//
// # Use
//
// Run migrations.Migrate on the database first; Open does not migrate.
//
//	if err := migrations.Migrate(ctx, url); err != nil { ... }
//	store, err := pg.Open(ctx, pg.Config{ConnString: url})
package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"

	"github.com/authledger/authledger/eventstore"
)

// ErrXidBehindLog is returned by Open when the cluster's transaction ids
// are below the newest transaction id in the log, as after restoring a
// logical dump into a new cluster. New events would sort before old ones
// and subscribers would skip them. Advance the cluster's xid past the log's
// (or restore physically, which keeps xids) before starting.
var ErrXidBehindLog = errors.New("pg: the cluster's transaction ids are behind the event log")

// ErrDuplicateEventID is returned by Append when an event id is already
// used by an event at another place (another stream or revision). Re-appending
// the same ids at the same place is an idempotent success instead.
var ErrDuplicateEventID = errors.New("pg: event id already used elsewhere in the log")

// Store is the PostgreSQL event store. It is safe for concurrent use.
type Store struct {
	cfg  Config
	pool *pgxpool.Pool

	batcher    *batcher      // groups concurrent appends; nil when grouping is off
	appendPool *pgxpool.Pool // the batcher's connections
	streamPool *pgxpool.Pool // reads of one stream, with generic plans
	allPool    *pgxpool.Pool // reads of $all, with one pinned plan

	id     string        // payload of this Store's NOTIFYs, so that it ignores its own
	wake   broadcast     // fired when new events may be visible
	tail   *tail         // reads the end of the log for live subscriptions
	kick   chan struct{} // asks the notifier to send one NOTIFY
	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	listen sync.Once
	closed sync.Once
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to a migrated database and checks that its transaction ids
// are ahead of the log (ErrXidBehindLog otherwise). It does not run
// migrations: call migrations.Migrate first.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.ConnString)
	if err != nil {
		return nil, fmt.Errorf("pg: %w", err)
	}
	pc.MaxConns = cfg.MaxConns
	pc.AfterConnect = RegisterTypes
	if pc.ConnConfig.ConnectTimeout == 0 {
		// An unreachable server (not one that refuses) must fail an append
		// in bounded time, as an outage (503), not hang the request.
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	rp := pc.ConnConfig.RuntimeParams
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(cfg.IdleInTransactionTimeout.Milliseconds(), 10)
	if rp["application_name"] == "" {
		rp["application_name"] = "authledger-eventstore"
	}

	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pg: %w", err)
	}
	if err := checkXid(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	streamPool, err := openStreamPool(ctx, pc)
	if err != nil {
		pool.Close()
		return nil, err
	}
	allPool, err := openAllPool(ctx, pc)
	if err != nil {
		streamPool.Close()
		pool.Close()
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	s := &Store{cfg: cfg, pool: pool, streamPool: streamPool, allPool: allPool, kick: make(chan struct{}, 1), bg: bg, stop: stop, id: uuid.NewString()}
	s.wake.init()
	s.tail = newTail(s)
	s.wg.Add(1)
	go s.notifier()
	if cfg.AppendBatch > 1 {
		if s.appendPool, err = openAppendPool(ctx, pc, cfg.AppendBatchers); err != nil {
			s.Close()
			return nil, err
		}
		s.batcher = newBatcher(s)
	}
	return s, nil
}

// RegisterTypes teaches a connection google/uuid's UUID, so that pgx sends
// and reads it in binary. Without it every uuid.UUID argument went through
// its driver.Valuer (a string), after a failed encode plan that built an
// error each time. Pools of other packages that pass uuid.UUID use it as
// their AfterConnect.
func RegisterTypes(_ context.Context, c *pgx.Conn) error {
	pgxuuid.Register(c.TypeMap())
	return nil
}

func checkXid(ctx context.Context, pool *pgxpool.Pool) error {
	var next, maxTx int64
	err := pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
		coalesce((SELECT tx_id FROM events ORDER BY tx_id DESC LIMIT 1), 0)`).Scan(&next, &maxTx)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return fmt.Errorf("pg: the event store schema is missing, run migrations.Migrate first: %w", err)
	}
	if err != nil {
		return fmt.Errorf("pg: start-up check: %w", err)
	}
	if maxTx >= next {
		return fmt.Errorf("%w: next transaction id %d, newest in the log %d", ErrXidBehindLog, next, maxTx)
	}
	return nil
}

// openStreamPool opens the connections that read single streams (every
// aggregate load). They use generic plans: a read of one stream is an index
// scan of its rows whatever the stream, and on an empty log the generic plan
// is a bitmap scan and a sort of that stream's rows, also bounded by the
// stream. With PostgreSQL's default, skewed stream lengths make the generic
// estimate look dearer than a custom one, so it planned the read anew on
// about half the executions, and planning cost more than the read (0.11
// against 0.07 ms under load).
func openStreamPool(ctx context.Context, pc *pgxpool.Config) (*pgxpool.Pool, error) {
	return openSidePool(ctx, pc, "streams", pc.MaxConns, map[string]string{"plan_cache_mode": "force_generic_plan"})
}

// openAllPool opens the connections that read $all (the tail, catching-up
// subscriptions, ReadAll). A read of $all has one right plan: walk the
// primary key from a position, in order, until the page is full. With
// PostgreSQL's default the tail's read was planned anew on most executions
// (0.4-0.5 ms, four times its execution); a plain generic plan is no
// answer, because one made on a small log is a bitmap scan and a sort of
// everything after the position, kept until the table's statistics change.
// So these connections use generic plans with bitmap scans, sequential
// scans and sorts turned off, which leaves the ordered walk of the primary
// key as the plan on an empty log and a large one alike.
func openAllPool(ctx context.Context, pc *pgxpool.Config) (*pgxpool.Pool, error) {
	return openSidePool(ctx, pc, "all", pc.MaxConns, map[string]string{
		"plan_cache_mode": "force_generic_plan", "enable_bitmapscan": "off", "enable_seqscan": "off", "enable_sort": "off",
	})
}

// openSidePool opens a pool of pc's connections for one kind of statement:
// at most maxConns, named after the main pool's application_name with
// "-"+kind (so that pg_stat_activity tells them apart), with settings
// added to each session.
func openSidePool(ctx context.Context, pc *pgxpool.Config, kind string, maxConns int32, settings map[string]string) (*pgxpool.Pool, error) {
	c := pc.Copy()
	c.MaxConns = maxConns
	rp := c.ConnConfig.RuntimeParams
	for k, v := range settings {
		rp[k] = v
	}
	rp["application_name"] = pc.ConnConfig.RuntimeParams["application_name"] + "-" + kind
	pool, err := pgxpool.NewWithConfig(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("pg: %s pool: %w", kind, err)
	}
	return pool, nil
}

// Pool is the store's connection pool, for callers that append inside their
// own transactions (AppendTx) and for tests. Closing the store closes it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close stops the store's background work and closes its pool. Running
// subscriptions fail afterwards.
func (s *Store) Close() error {
	s.closed.Do(func() {
		s.stop()
		if s.batcher != nil {
			s.batcher.close()
		}
		s.wg.Wait()
		if s.appendPool != nil {
			s.appendPool.Close()
		}
		s.streamPool.Close()
		s.allPool.Close()
		s.pool.Close()
	})
	return nil
}

// querier is what both the pool and a pgx.Tx offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Append implements eventstore.Store. Concurrent calls share a statement
// and a commit (see batcher); each call still returns only once its events
// are durable, with its own outcome. It retries by itself, with jitter, the
// rare append that lost a race with a writer of another process.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	r, err := newAppendReq(stream, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.retrying(ctx, func() (eventstore.AppendResult, error) { return s.appendOnce(ctx, r) })
}

// retrying runs op again, with jitter, while it loses a race for a
// revision (ErrRetryInNewTransaction), at most AppendRetries times.
func (s *Store) retrying(ctx context.Context, op func() (eventstore.AppendResult, error)) (eventstore.AppendResult, error) {
	for attempt := 0; ; attempt++ {
		res, err := op()
		if !errors.Is(err, eventstore.ErrRetryInNewTransaction) || attempt >= s.cfg.AppendRetries {
			return res, err
		}
		t := time.NewTimer(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))) //nolint:gosec // jitter, not a secret
		select {
		case <-ctx.Done():
			t.Stop()
			return eventstore.AppendResult{}, ctx.Err()
		case <-t.C:
		}
	}
}

// AppendTx appends inside a transaction the caller holds, so that events
// and other rows commit together. The transaction must be READ COMMITTED.
// It fails with an error matching eventstore.ErrRetryInNewTransaction when
// a later transaction has already written the stream (appending would put
// the stream's revisions out of order in $all): roll back and run the whole
// transaction again. The same error comes when a concurrent writer takes
// the revision first (the caller's transaction is then aborted). Such
// conflicts are likelier the longer the transaction ran before appending;
// append early. Call Wake after the commit so that
// subscribers do not wait for their next poll.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	r, err := newAppendReq(stream, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return appendSolo(ctx, tx, r)
}

// Wake tells subscribers that new events may be visible: those of this
// Store at once, those of other processes by a coalesced NOTIFY.
func (s *Store) Wake() {
	s.wake.fire()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Tombstone implements eventstore.Store: it writes a row of the reserved
// type $tombstone after the stream's last revision, under the same expected
// revision check and guard as an append. The stream's events stay in $all.
func (s *Store) Tombstone(ctx context.Context, stream string, expected eventstore.ExpectedRevision) error {
	r, err := newAppendReq(stream, expected, nil)
	if err != nil {
		return err
	}
	r.events = []eventstore.EventData{{ID: uuid.New(), Type: tombstoneType}}
	_, err = s.retrying(ctx, func() (eventstore.AppendResult, error) { return appendSolo(ctx, s.pool, r) })
	return err
}

const eventColumns = `e.tx_id, e.seq, e.event_id, e.stream, e.revision, e.type, e.data, e.metadata, e.recorded_at`

// ReadStream implements eventstore.Store. Stream reads are strongly
// consistent: they see every committed event of the stream (no horizon).
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	var limit *int64
	if opts.Limit > 0 {
		l := int64(opts.Limit)
		limit = &l
	}
	switch {
	case opts.Direction == eventstore.Forwards && opts.From == 0 && limit == nil:
		return s.readStreamEnd(ctx, stream, false, nil)
	case opts.Direction == eventstore.Backwards && opts.From == eventstore.End:
		return s.readStreamEnd(ctx, stream, true, limit)
	}
	// from < 0 means End: the stream's current revision.
	from := int64(-1)
	if opts.From != eventstore.End {
		from = int64(min(opts.From, math.MaxInt64))
	}
	rows, err := s.streamPool.Query(ctx, readStreamSQL(opts.Direction == eventstore.Backwards), stream, from, limit)
	if err != nil {
		return nil, fmt.Errorf("pg: read %q: %w", stream, err)
	}
	found, deleted := false, false
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*eventstore.RecordedEvent, error) {
		found = true
		// Pointers: a stream read past its end comes with the LEFT
		// JOIN's NULLs.
		var (
			tx, seq, rev *int64
			id           *uuid.UUID
			name, typ    *string
			data, meta   []byte
			at           *time.Time
		)
		if err := row.Scan(&deleted, &tx, &seq, &id, &name, &rev, &typ, &data, &meta, &at); err != nil {
			return nil, err
		}
		if tx == nil {
			return nil, nil
		}
		e := eventstore.RecordedEvent{
			ID: *id, Stream: *name, Type: *typ, RecordedAt: *at,
			Position: eventstore.Position{Commit: uint64(*tx), Prepare: uint64(*seq)},
			Revision: uint64(*rev),
		}
		if data != nil {
			e.Data = json.RawMessage(data)
		}
		if meta != nil {
			e.Metadata = json.RawMessage(meta)
		}
		return &e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pg: read %q: %w", stream, err)
	}
	switch {
	case !found:
		return nil, fmt.Errorf("%w: %q", eventstore.ErrStreamNotFound, stream)
	case deleted:
		return nil, fmt.Errorf("%w: %q", eventstore.ErrStreamDeleted, stream)
	}
	out := make([]eventstore.RecordedEvent, 0, len(evs))
	for _, e := range evs {
		if e != nil {
			out = append(out, *e)
		}
	}
	return out, nil
}

// readStreamEnd serves the two reads that include the stream's newest
// row: the whole stream from the start (every aggregate load) and a read
// backwards from the end (a load from the last event). Each is one plain
// index scan, without the general read's look at the newest row first: a
// tombstone is that row (the last one forwards, the first one backwards)
// and no row means no stream. limit (nil for none) applies backwards.
func (s *Store) readStreamEnd(ctx context.Context, stream string, backwards bool, limit *int64) ([]eventstore.RecordedEvent, error) {
	query, args := `SELECT `+eventColumns+` FROM events e WHERE e.stream = $1 ORDER BY e.revision`, []any{stream}
	if backwards {
		query, args = `SELECT `+eventColumns+` FROM events e WHERE e.stream = $1 ORDER BY e.revision DESC LIMIT $2`, []any{stream, limit}
	}
	rows, err := s.streamPool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("pg: read %q: %w", stream, err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (eventstore.RecordedEvent, error) {
		var (
			e            eventstore.RecordedEvent
			tx, seq, rev int64
		)
		// As *[]byte: pgx hands a *json.RawMessage to json.Unmarshal,
		// which validates what jsonb already guarantees (half of a
		// read's CPU); *[]byte is a plain copy.
		if err := row.Scan(&tx, &seq, &e.ID, &e.Stream, &rev, &e.Type, (*[]byte)(&e.Data), (*[]byte)(&e.Metadata), &e.RecordedAt); err != nil {
			return e, err
		}
		e.Position = eventstore.Position{Commit: uint64(tx), Prepare: uint64(seq)}
		e.Revision = uint64(rev)
		return e, nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("pg: read %q: %w", stream, err)
	case len(evs) == 0:
		return nil, fmt.Errorf("%w: %q", eventstore.ErrStreamNotFound, stream)
	}
	newest := evs[len(evs)-1]
	if backwards {
		newest = evs[0]
	}
	if newest.Type == tombstoneType {
		return nil, fmt.Errorf("%w: %q", eventstore.ErrStreamDeleted, stream)
	}
	return evs, nil
}

// ReadAll implements eventstore.Store. It reads below the xmin horizon
// only, so that what it returns is a stable prefix of the log; but it first
// waits until every transaction that was running when it was called has
// ended, so that an append that returned before the call is always read.
// A writing transaction left open therefore delays ReadAll (bounded by the
// pool's idle_in_transaction_session_timeout), never Append.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	floor, err := s.awaitHorizon(ctx)
	if err != nil {
		return nil, err
	}
	p, err := readPage(ctx, s.allPool, opts.After, opts.Limit, opts.Filter, false, floor, preciseHorizon)
	if err != nil {
		return nil, err
	}
	return p.events, nil
}

// awaitHorizon returns once the horizon has passed every transaction id
// assigned before the call, with the horizon it saw. That value stays a safe
// bound for reading: every transaction of this log below it has ended. A
// later eventstore_horizon() can be lower for a moment (a transaction of
// another database that ended between the function's snapshot and its
// look at pg_stat_activity is not recognised and counts as running), so
// the read that follows uses the greater of the two.
func (s *Store) awaitHorizon(ctx context.Context) (int64, error) {
	var target int64
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&target); err != nil {
		return 0, fmt.Errorf("pg: read $all: %w", err)
	}
	backoff := 500 * time.Microsecond
	for {
		var h int64
		if err := s.pool.QueryRow(ctx, `SELECT eventstore_horizon()`).Scan(&h); err != nil {
			return 0, fmt.Errorf("pg: read $all: %w", err)
		}
		if h >= target {
			return h, nil
		}
		if !sleep(ctx, backoff) {
			return 0, ctx.Err()
		}
		backoff = min(2*backoff, maxPendingBackoff)
	}
}

// Head implements eventstore.Store: the last position below the horizon.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	var tx, seq int64
	err := s.pool.QueryRow(ctx, `SELECT tx_id, seq FROM events WHERE tx_id < eventstore_horizon() ORDER BY tx_id DESC, seq DESC LIMIT 1`).Scan(&tx, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Position{}, nil
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("pg: head: %w", err)
	}
	return eventstore.Position{Commit: uint64(tx), Prepare: uint64(seq)}, nil
}

// page is one read of $all.
type page struct {
	events []eventstore.RecordedEvent
	// scanned is the position up to which every event below the horizon
	// was read or filtered out, when the page was not full (zero otherwise).
	scanned eventstore.Position
	// pending tells that committed events exist at or past the horizon:
	// an older transaction is still running and holds them back.
	pending bool
	// horizon is the bound the page was read below (withHead only).
	horizon int64
}

// horizonKind chooses how readPage bounds a read of $all.
type horizonKind int

const (
	// snapshotHorizon is the snapshot's xmin: the oldest transaction still
	// running anywhere in the cluster. It costs nothing, but a transaction
	// of another database holds it back for as long as it runs.
	snapshotHorizon horizonKind = iota
	// preciseHorizon is eventstore_horizon(): transactions known to run in
	// another database are left out. It reads pg_stat_activity, a copy of
	// every backend slot (about 0.25 ms with 400 connections allowed).
	preciseHorizon
)

func (k horizonKind) sql() string {
	if k == preciseHorizon {
		return `eventstore_horizon()`
	}
	return `pg_snapshot_xmin(pg_current_snapshot())::text::bigint`
}

func toInt64(u uint64) int64 {
	if u > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u)
}

// pageSQL is readPage's statement: $1, $2 the position to read after, $3
// the limit (NULL for none), $4 the event types and $5 the stream prefixes
// (NULL for any), $6 the floor of the horizon.
func pageSQL(withHead bool, hk horizonKind) string {
	sql := `WITH h AS MATERIALIZED (SELECT GREATEST(` + hk.sql() + `, $6::bigint) AS x)
SELECT 0, ` + eventColumns + ` FROM (
	SELECT e.* FROM events e, h
	 WHERE (e.tx_id, e.seq) > ($1, $2) AND e.tx_id < h.x
	   AND e.type <> '` + tombstoneType + `'
	   AND ($4::text[] IS NULL OR e.type = ANY ($4::text[]))
	   AND ($5::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($5::text[]) AS p WHERE starts_with(e.stream, p)))
	 ORDER BY e.tx_id, e.seq LIMIT $3) AS e`
	if withHead {
		sql += `
UNION ALL
SELECT 1, e.tx_id, e.seq, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM (SELECT tx_id, seq FROM events, h WHERE tx_id < h.x ORDER BY tx_id DESC, seq DESC LIMIT 1) AS e
UNION ALL
-- max(tx_id) walks the primary key backwards; an EXISTS against the CTE's
-- horizon was planned as a scan of the whole log.
SELECT 2, h.x, CASE WHEN (SELECT max(tx_id) FROM events) >= h.x THEN 1 ELSE 0 END, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM h`
	}
	return sql
}

// readPage reads $all after a position in one statement, so that the page,
// the head and the pending flag all come from one snapshot.
//
// floor is a horizon already seen (0 for none): the page reads below the
// greater of it and the current horizon, of the given kind. Both kinds are
// safe bounds: every transaction of this log below them has ended.
func readPage(ctx context.Context, q querier, after eventstore.Position, limit int, f eventstore.Filter, withHead bool, floor int64, hk horizonKind) (page, error) {
	var lim *int64
	if limit > 0 {
		l := int64(limit)
		lim = &l
	}
	var types, prefixes []string
	if len(f.EventTypes) > 0 {
		types = f.EventTypes
	}
	if len(f.StreamPrefixes) > 0 {
		prefixes = f.StreamPrefixes
	}
	rows, err := q.Query(ctx, pageSQL(withHead, hk), toInt64(after.Commit), toInt64(after.Prepare), lim, types, prefixes, floor)
	if err != nil {
		return page{}, fmt.Errorf("pg: read $all: %w", err)
	}
	defer rows.Close()
	var p page
	var head eventstore.Position
	for rows.Next() {
		var kind int
		var (
			e            eventstore.RecordedEvent
			tx, seq, rev *int64
			id           *uuid.UUID
			stream, typ  *string
			data, meta   []byte
			at           *time.Time
		)
		if err := rows.Scan(&kind, &tx, &seq, &id, &stream, &rev, &typ, &data, &meta, &at); err != nil {
			return page{}, fmt.Errorf("pg: read $all: %w", err)
		}
		switch kind {
		case 0:
			e.Position = eventstore.Position{Commit: uint64(*tx), Prepare: uint64(*seq)}
			e.ID, e.Stream, e.Revision, e.Type, e.RecordedAt = *id, *stream, uint64(*rev), *typ, *at
			if data != nil {
				e.Data = json.RawMessage(data)
			}
			if meta != nil {
				e.Metadata = json.RawMessage(meta)
			}
			p.events = append(p.events, e)
		case 1:
			head = eventstore.Position{Commit: uint64(*tx), Prepare: uint64(*seq)}
		case 2:
			p.horizon, p.pending = *tx, *seq == 1
		}
	}
	if err := rows.Err(); err != nil {
		return page{}, fmt.Errorf("pg: read $all: %w", err)
	}
	for i := 1; i < len(p.events); i++ {
		if p.events[i-1].Position.Compare(p.events[i].Position) >= 0 {
			return page{}, fmt.Errorf("pg: read $all: rows out of order at %s", p.events[i].Position)
		}
	}
	if limit <= 0 || len(p.events) < limit {
		p.scanned = head
	}
	return p, nil
}

// broadcast wakes every waiter at once: a channel closed and replaced.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) init() { b.ch = make(chan struct{}) }

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}
