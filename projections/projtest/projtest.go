// Package projtest is the projections' test harness: a migrated database of
// its own (pgtest), the real PostgreSQL event store over it, a pool for read
// models, and a small counting projection whose effects show any event lost
// or applied twice.
package projtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/test/pgtest"
)

// RunnerApp is the application_name of the read-model pool, so a test can
// drop exactly the runner's connections.
const RunnerApp = "projtest-runner"

// AuditKey is the chain key of the tests' audit trails (audit.New,
// audit.VerifyOptions.Key). Production derives its key from the master key.
var AuditKey = []byte("projtest audit chain key, 32 B..")

// Env is one test's database.
type Env struct {
	URL   string
	Store *pg.Store
	// Pool is the read-model pool (application_name RunnerApp).
	Pool *pgxpool.Pool
	// Admin is a pool for the test's own queries.
	Admin *pgxpool.Pool
}

// New creates and migrates a database and opens the store and pools.
func New(t testing.TB) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(ctx, url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := pg.Open(ctx, pg.Config{ConnString: url, PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pc.ConnConfig.RuntimeParams["application_name"] = RunnerApp
	pc.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: close before the database is dropped.
	t.Cleanup(func() {
		pool.Close()
		admin.Close()
		_ = st.Close()
	})
	return &Env{URL: url, Store: st, Pool: pool, Admin: admin}
}

// Config returns a runtime configuration over the env, with short timings.
func (e *Env) Config(ps ...projector.Projection) projector.Config {
	return projector.Config{
		Store: e.Store, Pool: e.Pool, Projections: ps,
		RetryBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		LockPollInterval: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
		LagInterval: 200 * time.Millisecond, RebuildIdle: 200 * time.Millisecond,
	}
}

// KillRunnerConnections terminates every backend of the read-model pool
// and its lock connections, as a crash or a network cut would.
func (e *Env) KillRunnerConnections(ctx context.Context) (int, error) {
	var n int
	err := e.Admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1`, RunnerApp).Scan(&n)
	return n, err
}

// Event builds an event with metadata.
func Event(typ string, data any, actor string) eventstore.EventData {
	id := uuid.New()
	b, _ := json.Marshal(data)
	md, _ := events.EncodeMetadata(events.Metadata{
		EventID: id, OccurredAt: time.Now().UTC(), CorrelationID: "req-" + id.String()[:8],
		Actor: events.Actor{Kind: events.ActorUser, ID: actor}, ClientIP: "192.0.2.7", UserAgent: "projtest/1.0",
	})
	return eventstore.EventData{ID: id, Type: typ, Data: b, Metadata: md}
}

// AppendN appends n events spread over streams, and returns the last
// position.
func (e *Env) AppendN(t testing.TB, ctx context.Context, n int, streams int) eventstore.Position {
	t.Helper()
	var last eventstore.Position
	for i := 0; i < n; i++ {
		s := fmt.Sprintf("thing-%d", i%streams)
		res, err := e.Store.Append(ctx, s, eventstore.Any{}, Event("thing.happened.v1", map[string]any{"i": i, "password_hash": "x"}, fmt.Sprintf("user-%d", i%3)))
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		last = res.Position
	}
	return last
}

// StartRunner runs a runner of cfg until the returned stop is called or
// the test ends; stop reports the runner's error.
func StartRunner(t testing.TB, cfg projector.Config) (*projector.Runner, func()) {
	t.Helper()
	r, err := projector.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("runner: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// Run runs a runner over ps, configured by Config, as StartRunner does.
func (e *Env) Run(t testing.TB, ps ...projector.Projection) (stop func()) {
	t.Helper()
	_, stop = StartRunner(t, e.Config(ps...))
	return stop
}

// WaitCaughtUp waits until the projections' checkpoints reach pos (use the
// position of the last append: Head can lag behind while a transaction,
// such as a projection's batch, is open).
func (e *Env) WaitCaughtUp(t testing.TB, ctx context.Context, pos eventstore.Position, names ...string) {
	t.Helper()
	w := projector.NewWaiter(e.Admin, nil, 10*time.Millisecond)
	if err := w.WaitFor(ctx, pos, names...); err != nil {
		t.Fatalf("wait for %v to reach %s: %v", names, pos, err)
	}
}

// ReadAllUpTo reads the whole log, waiting until it includes upTo.
func (e *Env) ReadAllUpTo(t testing.TB, ctx context.Context, upTo eventstore.Position) []eventstore.RecordedEvent {
	t.Helper()
	for {
		all, err := e.Store.ReadAll(ctx, eventstore.ReadAllOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) > 0 && all[len(all)-1].Position.Compare(upTo) >= 0 || upTo.IsZero() {
			return all
		}
		select {
		case <-ctx.Done():
			t.Fatalf("log never reached %s", upTo)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Counter is a test projection: per stream, how many events were applied
// and the last revision. An event applied twice or lost shows in n.
type Counter struct {
	ProjectionName string
	// Fail, when it holds a function, is called for each event; an error
	// fails the event.
	Fail atomic.Pointer[func(eventstore.RecordedEvent) error]
}

// Name implements projector.Projection.
func (c *Counter) Name() string { return c.ProjectionName }

// Filter implements projector.Projection.
func (c *Counter) Filter() eventstore.Filter { return eventstore.Filter{} }

// Tables implements projector.Projection.
func (c *Counter) Tables() []string { return []string{c.ProjectionName + "_counts"} }

// CreateTables implements projector.Projection.
func (c *Counter) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	_, err := tx.Exec(ctx, "CREATE TABLE "+t.Ident(c.Tables()[0])+" (stream text PRIMARY KEY, n bigint NOT NULL, last_revision bigint NOT NULL)")
	return err
}

// Begin implements projector.Projection.
func (c *Counter) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	return &counterBatch{c: c, tx: tx, table: t.Ident(c.Tables()[0])}, nil
}

type counterBatch struct {
	c     *Counter
	tx    pgx.Tx
	table string
}

func (b *counterBatch) Apply(ctx context.Context, ev eventstore.RecordedEvent) error {
	if f := b.c.Fail.Load(); f != nil {
		if err := (*f)(ev); err != nil {
			return err
		}
	}
	_, err := b.tx.Exec(ctx, "INSERT INTO "+b.table+` (stream, n, last_revision) VALUES ($1, 1, $2)
		ON CONFLICT (stream) DO UPDATE SET n = `+b.table+`.n + 1, last_revision = excluded.last_revision`, ev.Stream, int64(ev.Revision))
	return err
}

func (b *counterBatch) Flush(context.Context) error { return nil }

// Counts reads a counter view: stream -> [n, last revision].
func (e *Env) Counts(t testing.TB, ctx context.Context, view string) map[string][2]int64 {
	t.Helper()
	rows, err := e.Admin.Query(ctx, "SELECT stream, n, last_revision FROM "+pgx.Identifier{view}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]int64{}
	for rows.Next() {
		var s string
		var n, r int64
		if err := rows.Scan(&s, &n, &r); err != nil {
			t.Fatal(err)
		}
		out[s] = [2]int64{n, r}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ExpectedCounts computes the counter's content from a full read of the log.
func (e *Env) ExpectedCounts(t testing.TB, ctx context.Context, upTo eventstore.Position) map[string][2]int64 {
	t.Helper()
	all := e.ReadAllUpTo(t, ctx, upTo)
	out := map[string][2]int64{}
	for _, ev := range all {
		c := out[ev.Stream]
		out[ev.Stream] = [2]int64{c[0] + 1, int64(ev.Revision)}
	}
	return out
}
