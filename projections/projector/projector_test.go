package projector_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
)

// counterValue reads the counter of one projection in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, projection string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "projection" && l.GetValue() == projection {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{projection=%q} not found", name, projection)
	return 0
}

func TestRunnerAppliesEventsAndWaiterSeesThem(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	c := &projtest.Counter{ProjectionName: "counter"}
	env.AppendN(t, ctx, 50, 5)
	reg := prometheus.NewRegistry()
	cfg := env.Config(c, audit.New(projtest.AuditKey))
	cfg.Registerer = reg
	r, _ := projtest.StartRunner(t, cfg)
	w := projector.NewWaiter(env.Pool, r, 0)

	last := env.AppendN(t, ctx, 30, 7)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := w.WaitFor(wctx, last, "counter", audit.Name); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	if got, want := env.Counts(t, ctx, "counter_counts"), env.ExpectedCounts(t, ctx, last); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	if err := r.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	st, err := projector.Status(ctx, env.Pool, env.Store, c)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].State != projector.StateRunning || st[0].LagEvents != 0 || st[0].EventsApplied != 80 {
		t.Fatalf("status = %+v", st[0])
	}
	if got := counterValue(t, reg, "authledger_projection_events_applied_total", "counter"); got != 80 {
		t.Fatalf("events_applied_total{counter} = %v, want 80", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, name := range []string{"authledger_projection_failures_total", "authledger_projection_checkpoint_position",
		"authledger_projection_batch_duration_seconds"} {
		if !have[name] {
			t.Errorf("metric %s not registered (have %v)", name, have)
		}
	}

	// A token beyond the log cannot be reached: the wait is bounded.
	far := eventstore.Position{Commit: last.Commit + 1000}
	sctx, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer scancel()
	if err := w.WaitFor(sctx, far, "counter"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor beyond the log = %v, want deadline exceeded", err)
	}
	sctx2, scancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer scancel2()
	if err := w.WaitFor(sctx2, last, "nope"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor unknown = %v", err)
	}
}

func TestOneInstanceRunsAProjection(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	c := &projtest.Counter{ProjectionName: "counter"}
	r1, stop1 := projtest.StartRunner(t, env.Config(c))
	r2, _ := projtest.StartRunner(t, env.Config(c))
	last := env.AppendN(t, ctx, 20, 3)
	env.WaitCaughtUp(t, ctx, last, "counter")
	deadline := time.Now().Add(5 * time.Second)
	for {
		s1, s2 := r1.States()["counter"], r2.States()["counter"]
		if (s1 == projector.StateRunning) != (s2 == projector.StateRunning) && (s1 == projector.StateStandby || s2 == projector.StateStandby) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("states %s / %s: want one running, one standby", s1, s2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The standby takes over when the owner goes away.
	stop1()
	last = env.AppendN(t, ctx, 20, 3)
	env.WaitCaughtUp(t, ctx, last, "counter")
	if got, want := env.Counts(t, ctx, "counter_counts"), env.ExpectedCounts(t, ctx, last); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
}

func TestFailingHandlerStopsProjectionUntilFixedAndRestarted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	c := &projtest.Counter{ProjectionName: "counter"}
	env.AppendN(t, ctx, 10, 2)
	bad := projtest.Event("thing.broken.v1", map[string]any{"x": 1}, "u")
	if _, err := env.Store.Append(ctx, "thing-bad", eventstore.Any{}, bad); err != nil {
		t.Fatal(err)
	}
	last := env.AppendN(t, ctx, 10, 2)
	var calls atomic.Int64
	fail := func(ev eventstore.RecordedEvent) error {
		if ev.ID == bad.ID {
			calls.Add(1)
			return errors.New("cannot handle this one")
		}
		return nil
	}
	c.Fail.Store(&fail)

	cfg := env.Config(c)
	cfg.MaxAttempts = 3
	r, stop := projtest.StartRunner(t, cfg)
	deadline := time.Now().Add(20 * time.Second)
	for r.States()["counter"] != projector.StateFailed {
		if time.Now().After(deadline) {
			t.Fatalf("projection state %s, want failed", r.States()["counter"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("the failing event was tried %d times, want 3", n)
	}
	err := r.Ready(ctx)
	if !errors.Is(err, projector.ErrNotReady) {
		t.Fatalf("Ready = %v, want not ready", err)
	}
	t.Logf("readiness: %v", err)
	st, err := projector.Status(ctx, env.Pool, env.Store, c)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].State != projector.StateFailed || st[0].FailedEventID != bad.ID.String() || st[0].FailedEventType != "thing.broken.v1" || st[0].LastError == "" {
		t.Fatalf("status = %+v", st[0])
	}
	// Everything before the failing event is applied and kept; nothing after.
	if st[0].EventsApplied != 10 || st[0].LagEvents != 11 {
		t.Fatalf("applied %d, lag %d; want 10 and 11", st[0].EventsApplied, st[0].LagEvents)
	}
	// Another process sees the failure too.
	other, err := projector.NewRunner(env.Config(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Ready(ctx); !errors.Is(err, projector.ErrNotReady) {
		t.Fatalf("Ready of another instance = %v", err)
	}
	stop()

	// Fix the cause and restart: the event is applied, never skipped.
	c.Fail.Store(nil)
	r2, _ := projtest.StartRunner(t, env.Config(c))
	waitState(t, r2, "counter", projector.StateRunning)
	env.WaitCaughtUp(t, ctx, last, "counter")
	if got, want := env.Counts(t, ctx, "counter_counts"), env.ExpectedCounts(t, ctx, last); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	if got := env.Counts(t, ctx, "counter_counts")["thing-bad"]; got[0] != 1 {
		t.Fatalf("failing event applied %d times, want 1", got[0])
	}
	if err := r2.Ready(ctx); err != nil {
		t.Fatalf("Ready after restart: %v", err)
	}
}

func waitState(t *testing.T, r *projector.Runner, name, state string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.States()[name] != state {
		if time.Now().After(deadline) {
			t.Fatalf("projection %s state %s, want %s", name, r.States()[name], state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// appender appends events until stopped, retrying failed appends.
func appender(t *testing.T, env *projtest.Env, perSecond int) (stop func() (int64, eventstore.Position)) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	var last eventstore.Position
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			s := fmt.Sprintf("live-%d", i%13)
			ev := projtest.Event("thing.happened.v1", map[string]any{"i": i, "api_key": "k"}, "u")
			// The append itself is not cancelled by stop: one cancelled
			// in flight may still commit, after the position stop reports.
			for ctx.Err() == nil {
				if res, err := env.Store.Append(context.Background(), s, eventstore.Any{}, ev); err == nil {
					last = res.Position
					n.Add(1)
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	return func() (int64, eventstore.Position) {
		cancel()
		<-done
		return n.Load(), last
	}
}

// snapshotTable reads a table or view as rows of text, in key order.
func snapshotTable(t *testing.T, ctx context.Context, env *projtest.Env, sql string) [][]any {
	t.Helper()
	rows, err := env.Admin.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const auditSnapshot = `SELECT seq, event_id::text, position, stream, revision, event_type, occurred_at, recorded_at, actor_kind, actor_id,
	correlation_id, causation_id, client_ip, user_agent, summary, encode(hash, 'hex') FROM audit_log ORDER BY seq`

func TestKilledRunnerLosesNothingAndAppliesNothingTwice(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := projtest.New(t)
	c := &projtest.Counter{ProjectionName: "counter"}
	last := env.AppendN(t, ctx, 300, 11)
	stopAppending := appender(t, env, 300)

	rounds := 25
	if testing.Short() {
		rounds = 8
	}
	kills := 0
	for i := 0; i < rounds; i++ {
		// A burst makes the runner catch up in multi-event batches, so the
		// kills below land in the middle of open batches.
		burst := make([]eventstore.EventData, 100+rand.IntN(400))
		for j := range burst {
			burst[j] = projtest.Event("thing.burst.v1", map[string]any{"j": j, "token": "t"}, "u")
		}
		res, err := env.Store.Append(ctx, fmt.Sprintf("burst-%d", i), eventstore.NoStream{}, burst...)
		if err != nil {
			t.Fatal(err)
		}
		if res.Position.Compare(last) > 0 {
			last = res.Position
		}
		cfg := env.Config(c, audit.New(projtest.AuditKey))
		cfg.BatchSize = 1 + rand.IntN(200)
		_, stop := projtest.StartRunner(t, cfg)
		time.Sleep(time.Duration(5+rand.IntN(150)) * time.Millisecond)
		switch rand.IntN(3) {
		case 0: // connection cut under a running runner: it must recover by itself
			n, err := env.KillRunnerConnections(ctx)
			if err != nil {
				t.Fatal(err)
			}
			kills += n
			time.Sleep(time.Duration(20+rand.IntN(150)) * time.Millisecond)
			stop()
		case 1: // crash: cancel and drop the connections at once
			go stop()
			n, err := env.KillRunnerConnections(ctx)
			if err != nil {
				t.Fatal(err)
			}
			kills += n
			stop()
		default:
			stop()
			n, err := env.KillRunnerConnections(ctx)
			if err != nil {
				t.Fatal(err)
			}
			kills += n
		}
	}
	appended, lastLive := stopAppending()
	if lastLive.Compare(last) > 0 {
		last = lastLive
	}
	t.Logf("%d rounds, %d connections terminated, %d events appended meanwhile", rounds, kills, appended)

	_, stop := projtest.StartRunner(t, env.Config(c, audit.New(projtest.AuditKey)))
	env.WaitCaughtUp(t, ctx, last, "counter", audit.Name)
	stop()

	want := env.ExpectedCounts(t, ctx, last)
	if got := env.Counts(t, ctx, "counter_counts"); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts after kills differ from the log: %s", countsDiff(got, want))
	}
	rep, err := audit.Verify(ctx, env.Admin, env.Store, audit.VerifyOptions{Key: projtest.AuditKey})
	if err != nil || !rep.OK {
		t.Fatalf("audit verify: %+v, %v", rep, err)
	}
	all := env.ReadAllUpTo(t, ctx, last)
	if rep.Rows != int64(len(all)) {
		t.Fatalf("audit rows %d, log events %d", rep.Rows, len(all))
	}
	liveCounts := snapshotTable(t, ctx, env, "SELECT * FROM counter_counts ORDER BY stream")
	liveAudit := snapshotTable(t, ctx, env, auditSnapshot)

	// A fresh rebuild of each read model equals the one that survived the kills.
	cfg := env.Config(c, audit.New(projtest.AuditKey))
	for _, name := range []string{"counter", audit.Name} {
		if _, err := projector.Rebuild(ctx, cfg, name, projector.RebuildOptions{}); err != nil {
			t.Fatalf("rebuild %s: %v", name, err)
		}
	}
	if got := snapshotTable(t, ctx, env, "SELECT * FROM counter_counts ORDER BY stream"); !reflect.DeepEqual(got, liveCounts) {
		t.Fatalf("rebuilt counter differs from the live one")
	}
	if got := snapshotTable(t, ctx, env, auditSnapshot); !reflect.DeepEqual(got, liveAudit) {
		t.Fatalf("rebuilt audit trail differs from the live one (%d vs %d rows)", len(got), len(liveAudit))
	}
}

func TestRebuildWhileServingLosesNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := projtest.New(t)
	c := &projtest.Counter{ProjectionName: "counter"}
	last := env.AppendN(t, ctx, 2000, 17)
	cfg := env.Config(c, audit.New(projtest.AuditKey))
	cfg.BatchSize = 50 // small batches make the rebuild long enough to overlap appends
	r, _ := projtest.StartRunner(t, cfg)
	env.WaitCaughtUp(t, ctx, last, "counter", audit.Name)
	stopAppending := appender(t, env, 200)

	// Queries keep being served during the rebuild and the swap.
	qctx, qcancel := context.WithCancel(ctx)
	var queries, queryErrs atomic.Int64
	var firstErr atomic.Value
	var qwg sync.WaitGroup
	for i := 0; i < 2; i++ {
		qwg.Add(1)
		go func() {
			defer qwg.Done()
			for qctx.Err() == nil {
				var n int64
				err := env.Admin.QueryRow(qctx, "SELECT (SELECT coalesce(sum(n), 0) FROM counter_counts) + (SELECT count(*) FROM audit_log)").Scan(&n)
				if err != nil && qctx.Err() == nil {
					queryErrs.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				queries.Add(1)
			}
		}()
	}

	var progress []projector.Progress
	var pmu sync.Mutex
	for _, name := range []string{"counter", audit.Name} {
		final, err := projector.Rebuild(ctx, cfg, name, projector.RebuildOptions{ProgressInterval: 20 * time.Millisecond, Progress: func(p projector.Progress) {
			pmu.Lock()
			progress = append(progress, p)
			pmu.Unlock()
		}})
		if err != nil {
			t.Fatalf("rebuild %s: %v", name, err)
		}
		if final.Phase != projector.PhaseDone || final.Generation != 2 || final.Applied < 2000 {
			t.Fatalf("final progress of %s: %+v", name, final)
		}
		t.Logf("rebuild %s: %d events in %s (%.0f events/s)", name, final.Applied, final.Elapsed.Round(time.Millisecond), final.EventsPerSecond)
	}
	appended, lastLive := stopAppending()
	if lastLive.Compare(last) > 0 {
		last = lastLive
	}
	qcancel()
	qwg.Wait()
	if queryErrs.Load() > 0 {
		t.Fatalf("%d of %d queries failed during the rebuild; first: %v", queryErrs.Load(), queries.Load(), firstErr.Load())
	}
	if appended < 10 {
		t.Fatalf("only %d events appended during the rebuilds", appended)
	}
	pmu.Lock()
	sawETA := false
	for _, p := range progress {
		if p.Phase == projector.PhaseBuilding && p.ETA > 0 {
			sawETA = true
		}
	}
	pmu.Unlock()
	if !sawETA {
		t.Errorf("no progress report carried an ETA")
	}

	env.WaitCaughtUp(t, ctx, last, "counter", audit.Name)
	if got, want := env.Counts(t, ctx, "counter_counts"), env.ExpectedCounts(t, ctx, last); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts after rebuild differ from the log: %s", countsDiff(got, want))
	}
	rep, err := audit.Verify(ctx, env.Admin, env.Store, audit.VerifyOptions{Key: projtest.AuditKey})
	if err != nil || !rep.OK {
		t.Fatalf("audit verify after rebuild: %+v %v", rep, err)
	}
	var gen int
	if err := env.Admin.QueryRow(ctx, "SELECT generation FROM projection_checkpoints WHERE name = 'counter'").Scan(&gen); err != nil || gen != 2 {
		t.Fatalf("generation = %d (%v), want 2", gen, err)
	}
	var old bool
	if err := env.Admin.QueryRow(ctx, "SELECT to_regclass('counter_counts_g1') IS NOT NULL").Scan(&old); err != nil || old {
		t.Fatalf("old generation still there: %v %v", old, err)
	}
	if err := r.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
}

// countsDiff lists the streams whose (count, last revision) differ.
func countsDiff(got, want map[string][2]int64) string {
	var out []string
	for s, w := range want {
		if g := got[s]; g != w {
			out = append(out, fmt.Sprintf("%s: got %v want %v", s, g, w))
		}
	}
	for s, g := range got {
		if _, ok := want[s]; !ok {
			out = append(out, fmt.Sprintf("%s: got %v, not in the log", s, g))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// wantedOnly is a counter that reads the streams prefixed "wanted-" only.
type wantedOnly struct{ *projtest.Counter }

func (wantedOnly) Filter() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: []string{"wanted-"}}
}

// A projection's progress through events it filters out is announced to
// local waiters at once but written lazily: not one checkpoint transaction
// per unrelated event of the log. It still reaches the table.
func TestFilteredProgressIsWrittenLazily(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	cfg := env.Config(wantedOnly{&projtest.Counter{ProjectionName: "wanted"}})
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	cfg.CheckpointInterval = 300 * time.Millisecond
	r, _ := projtest.StartRunner(t, cfg)
	local := projector.NewWaiter(env.Pool, r, 0)
	commits := func() float64 {
		return counterValue(t, reg, "authledger_projection_batches_committed_total", "wanted")
	}
	res, err := env.Store.Append(ctx, "wanted-1", eventstore.NoStream{}, projtest.Event("thing.happened.v1", map[string]int{"i": 0}, "u"))
	if err != nil {
		t.Fatal(err)
	}
	if err := local.WaitFor(ctx, res.Position, "wanted"); err != nil {
		t.Fatal(err)
	}
	before := commits()
	const unrelated = 60
	var last eventstore.Position
	for i := range unrelated {
		res, err := env.Store.Append(ctx, fmt.Sprintf("other-%d", i), eventstore.NoStream{}, projtest.Event("thing.happened.v1", map[string]int{"i": i}, "u"))
		if err != nil {
			t.Fatal(err)
		}
		last = res.Position
		// Paced, so that the subscription hands over one position at a
		// time, as under live traffic.
		time.Sleep(5 * time.Millisecond)
	}
	if err := local.WaitFor(ctx, last, "wanted"); err != nil {
		t.Fatalf("the local waiter did not see the filtered progress: %v", err)
	}
	if n := commits() - before; n >= unrelated/2 {
		t.Fatalf("%v checkpoint commits for %d unrelated events: progress is written per event", n, unrelated)
	}
	// Another instance's waiter reads the table: the progress gets there.
	if err := projector.NewWaiter(env.Pool, nil, 10*time.Millisecond).WaitFor(ctx, last, "wanted"); err != nil {
		t.Fatalf("the filtered progress never reached the checkpoint table: %v", err)
	}
}

// While events keep arriving, a live projection commits at most once per
// CommitInterval: after a commit, the events that follow are gathered
// (here until BatchSize fills) and applied in one transaction instead of
// one by one. The first event after a quiet spell commits at once.
func TestCommitIntervalGathersEventsIntoOneBatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	c := &projtest.Counter{ProjectionName: "counter"}
	cfg := env.Config(c)
	cfg.CommitInterval = time.Hour
	cfg.BatchTimeout = time.Hour
	cfg.BatchSize = 5
	r, stop := projtest.StartRunner(t, cfg)
	defer stop()
	waitState(t, r, "counter", projector.StateRunning)

	applied := func() int64 {
		t.Helper()
		st, err := projector.Status(ctx, env.Pool, env.Store, c)
		if err != nil {
			t.Fatal(err)
		}
		return st[0].EventsApplied
	}
	first := env.AppendN(t, ctx, 1, 1)
	env.WaitCaughtUp(t, ctx, first, "counter")
	if n := applied(); n != 1 {
		t.Fatalf("applied %d after the first event, want 1", n)
	}
	// Four more are gathered: the interval since the last commit has not
	// passed and the batch is not full.
	env.AppendN(t, ctx, 4, 1)
	time.Sleep(300 * time.Millisecond)
	if n := applied(); n != 1 {
		t.Fatalf("applied %d while events should be gathering, want 1", n)
	}
	// The fifth fills the batch: all five commit together.
	last := env.AppendN(t, ctx, 1, 1)
	env.WaitCaughtUp(t, ctx, last, "counter")
	if n := applied(); n != 6 {
		t.Fatalf("applied %d, want 6", n)
	}
	if got, want := env.Counts(t, ctx, "counter_counts"), env.ExpectedCounts(t, ctx, last); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
}

// commitModeSeen is a counter that records the synchronous_commit setting
// of each batch's transaction.
type commitModeSeen struct {
	*projtest.Counter
	mu    sync.Mutex
	modes []string
}

func (c *commitModeSeen) Begin(ctx context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	var mode string
	if err := tx.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&mode); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.modes = append(c.modes, mode)
	c.mu.Unlock()
	return c.Counter.Begin(ctx, tx, t)
}

// A projection's batches commit without waiting for the WAL flush: a read
// model and its checkpoint are one transaction, so a crash that loses the
// last commits loses both, and the events are applied again from the log.
// The sessions' own setting (for other work on the pool) is untouched.
func TestBatchesCommitWithoutWaitingForTheFlush(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	// Sessions of this database wait for the flush, whatever the cluster
	// says (scripts/pg.sh's fast mode turns it off everywhere).
	if _, err := env.Pool.Exec(ctx, `DO $$ BEGIN
		EXECUTE format('ALTER DATABASE %I SET synchronous_commit = on', current_database()); END $$`); err != nil {
		t.Fatal(err)
	}
	env.Pool.Reset()
	c := &commitModeSeen{Counter: &projtest.Counter{ProjectionName: "counter"}}
	r, stop := projtest.StartRunner(t, env.Config(c))
	defer stop()
	waitState(t, r, "counter", projector.StateRunning)
	last := env.AppendN(t, ctx, 3, 1)
	env.WaitCaughtUp(t, ctx, last, "counter")
	c.mu.Lock()
	modes := slices.Clone(c.modes)
	c.mu.Unlock()
	if len(modes) == 0 || slices.ContainsFunc(modes, func(m string) bool { return m != "off" }) {
		t.Fatalf("batches ran with synchronous_commit %v, want off", modes)
	}
	var mode string
	if err := env.Pool.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&mode); err != nil || mode != "on" {
		t.Fatalf("the pool's sessions have synchronous_commit %q (%v), want on", mode, err)
	}
	if got, want := env.Counts(t, ctx, "counter_counts"), env.ExpectedCounts(t, ctx, last); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
}

// slowFlush is a counter whose batches take longer to flush than a
// rebuild's RebuildIdle.
type slowFlush struct {
	*projtest.Counter
	delay time.Duration
}

func (s slowFlush) Begin(ctx context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	b, err := s.Counter.Begin(ctx, tx, t)
	return slowBatch{Batch: b, delay: s.delay}, err
}

type slowBatch struct {
	projector.Batch
	delay time.Duration
}

func (b slowBatch) Flush(ctx context.Context) error {
	time.Sleep(b.delay)
	return b.Batch.Flush(ctx)
}

// A rebuild is caught up when its subscription has had nothing to deliver
// for RebuildIdle, not when its own batches took that long: a rebuild
// whose batches flush slowly still applies the whole log before it swaps
// (it used to swap in a partial generation and leave the rest to the live
// runner, or to nobody).
func TestSlowBatchesDoNotCutARebuildShort(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := projtest.New(t)
	// Six batches of RebuildBatchSize: the first event of each arrives
	// after the previous batch took longer than RebuildIdle.
	const n = 6 * projector.RebuildBatchSize
	var last eventstore.Position
	for i := range n / 1000 {
		evs := make([]eventstore.EventData, 1000)
		for j := range evs {
			evs[j] = projtest.Event("thing.happened.v1", map[string]int{"i": i*1000 + j}, "u")
		}
		res, err := env.Store.Append(ctx, fmt.Sprintf("thing-%d", i), eventstore.NoStream{}, evs...)
		if err != nil {
			t.Fatal(err)
		}
		last = res.Position
	}
	cfg := env.Config()
	cfg.RebuildIdle = 300 * time.Millisecond
	p := slowFlush{Counter: &projtest.Counter{ProjectionName: "counter"}, delay: 2 * cfg.RebuildIdle}
	cfg.Projections = []projector.Projection{p}
	final, err := projector.Rebuild(ctx, cfg, "counter", projector.RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No live runner: what the rebuild swapped in is all there is.
	if final.Applied != n || final.Position != last {
		t.Fatalf("rebuild swapped in %d events up to %s, want %d up to %s", final.Applied, final.Position, n, last)
	}
	if got, want := env.Counts(t, ctx, "counter_counts"), env.ExpectedCounts(t, ctx, last); !reflect.DeepEqual(got, want) {
		t.Fatalf("rebuilt counts differ from the log: %s", countsDiff(got, want))
	}
}

// A projection that panics on an event fails that event like an error:
// the process goes on, the projection retries and then stops on it, and
// the events before it stay applied.
func TestPanickingProjectionFailsTheEvent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	c := &projtest.Counter{ProjectionName: "counter"}
	env.AppendN(t, ctx, 5, 1)
	bad := projtest.Event("thing.broken.v1", map[string]any{"x": 1}, "u")
	if _, err := env.Store.Append(ctx, "thing-bad", eventstore.Any{}, bad); err != nil {
		t.Fatal(err)
	}
	fail := func(ev eventstore.RecordedEvent) error {
		if ev.ID == bad.ID {
			panic("cannot handle this one")
		}
		return nil
	}
	c.Fail.Store(&fail)
	cfg := env.Config(c)
	cfg.MaxAttempts = 2
	r, _ := projtest.StartRunner(t, cfg)
	waitState(t, r, "counter", projector.StateFailed)
	st, err := projector.Status(ctx, env.Pool, env.Store, c)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].FailedEventID != bad.ID.String() || !strings.Contains(st[0].LastError, "panicked") || st[0].EventsApplied != 5 {
		t.Fatalf("status = %+v", st[0])
	}
}
