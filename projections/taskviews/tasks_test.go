package taskviews_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/projections/taskviews/taskstest"
)

// run starts a runner over the tasks projection until the test ends.
func run(t *testing.T, env *projtest.Env) (stop func()) {
	t.Helper()
	return env.Run(t, taskviews.New())
}

// scenario is a mix of every lifecycle for two users, all created on day1
// or day2.
type scenario struct {
	alice, bob                                    uuid.UUID
	done, retried, dead, cancelled, deleted, gone *taskstest.Builder
	queued, busy, bobs                            *taskstest.Builder
	last                                          eventstore.Position
	day1, day2                                    time.Time
}

func build(t *testing.T, ctx context.Context, st eventstore.Store) *scenario {
	t.Helper()
	s := &scenario{alice: uuid.New(), bob: uuid.New(),
		day1: time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC), day2: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	s.done = taskstest.Create(t, ctx, st, s.alice, s.day1, "Invoice March.png", "receipt.png").
		Claim("w1", time.Minute).Complete("w1", "hello world", 100)
	s.retried = taskstest.Create(t, ctx, st, s.alice, s.day1.Add(time.Minute), "scan_1.png").
		Claim("w1", time.Minute).Fail("w1", "tesseract crashed", 50, false).Retry().
		Claim("w2", time.Minute).Complete("w2", "second try", 70)
	s.dead = taskstest.Create(t, ctx, st, s.alice, s.day1.Add(2*time.Minute), "broken.pdf").
		Claim("w1", time.Minute).Release("w1").Claim("w2", time.Minute).Fail("w2", "bad file \xff", 30, true)
	s.cancelled = taskstest.Create(t, ctx, st, s.alice, s.day2, "never.png").Cancel()
	s.deleted = taskstest.Create(t, ctx, st, s.alice, s.day2.Add(time.Minute), "private.png").
		Claim("w1", time.Minute).Complete("w1", "text", 20).Delete()
	s.gone = taskstest.Create(t, ctx, st, s.alice, s.day2.Add(2*time.Minute), "old.png").Expire()
	s.queued = taskstest.Create(t, ctx, st, s.alice, s.day2.Add(3*time.Minute), "waiting.png", "receipt.png")
	s.busy = taskstest.Create(t, ctx, st, s.alice, s.day2.Add(4*time.Minute), "busy.png").Claim("w3", 30*time.Second)
	s.busy.Renew("w3", s.day2.Add(time.Hour))
	s.bobs = taskstest.Create(t, ctx, st, s.bob, s.day1, "bob secret.png")
	s.last = s.bobs.Last
	return s
}

func TestProjectionBuildsTheReadModels(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	run(t, env)
	s := build(t, ctx, env.Store)
	env.WaitCaughtUp(t, ctx, s.last, taskviews.Name)
	db := env.Admin

	// Live tasks: deleted and expired ones are gone, with their files.
	var live []uuid.UUID
	rows, _ := db.Query(ctx, "SELECT task_id FROM tasks WHERE owner_id = $1", s.alice)
	live, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	want := []uuid.UUID{s.done.ID, s.retried.ID, s.dead.ID, s.cancelled.ID, s.queued.ID, s.busy.ID}
	if !sameSet(live, want) {
		t.Fatalf("live tasks %v, want %v", live, want)
	}
	var nfiles int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM task_files WHERE task_id = ANY($1)", []uuid.UUID{s.deleted.ID, s.gone.ID}).Scan(&nfiles); err != nil || nfiles != 0 {
		t.Fatalf("files of removed tasks: %d %v", nfiles, err)
	}

	// One task's row in full.
	got, look, err := taskviews.Get(ctx, db, s.retried.ID, s.alice)
	if err != nil || look != taskviews.Found {
		t.Fatalf("get: %v %v", look, err)
	}
	if got.Status != "completed" || got.Attempts != 2 || got.MaxAttempts != 3 || got.ProcessingMS != 120 || got.Result == nil ||
		*got.Result != "second try" || got.Error != nil || got.FileCount != 1 || got.Bytes != 100 || len(got.Files) != 1 ||
		got.Files[0].Name != "scan_1.png" || got.Files[0].SHA256 != taskstest.Blob("content of scan_1.png") ||
		got.StartedAt == nil || got.FinishedAt == nil || !got.FinishedAt.After(*got.StartedAt) || !got.CreatedAt.Equal(s.day1.Add(time.Minute)) {
		t.Fatalf("retried task = %+v", got)
	}
	got, _, _ = taskviews.Get(ctx, db, s.dead.ID, s.alice)
	if got.Status != "failed" || got.Attempts != 2 || got.Error == nil || *got.Error != "bad file \uFFFD" {
		t.Fatalf("dead task = %+v (error %q)", got, deref(got.Error))
	}
	got, _, _ = taskviews.Get(ctx, db, s.done.ID, s.alice)
	if len(got.Files) != 2 || got.Files[0].Name != "Invoice March.png" || got.Files[1].Name != "receipt.png" {
		t.Fatalf("files not in upload order: %+v", got.Files)
	}
	for _, c := range []struct {
		id, as uuid.UUID
		want   taskviews.Lookup
	}{
		{s.bobs.ID, s.alice, taskviews.NotOwner}, {uuid.New(), s.alice, taskviews.Missing}, {s.deleted.ID, s.alice, taskviews.Gone},
		{s.gone.ID, s.bob, taskviews.NotOwner}, {s.bobs.ID, uuid.Nil, taskviews.Found},
	} {
		if _, look, err := taskviews.Get(ctx, db, c.id, c.as); err != nil || look != c.want {
			t.Errorf("Get(%s as %s) = %v %v, want %v", c.id, c.as, look, err, c.want)
		}
	}

	// History keeps every task, with its final status.
	hist := map[uuid.UUID]string{}
	err = taskviews.EachHistory(ctx, db, taskviews.Filter{Owner: s.alice}, taskviews.SortCreatedAsc, func(h taskviews.HistoryEntry) error {
		hist[h.TaskID] = h.Status
		if h.TaskID == s.deleted.ID && (h.DeletedAt == nil || h.ProcessingMS != 20 || h.FileNames[0] != "private.png") {
			return fmt.Errorf("deleted history row %+v", h)
		}
		if h.TaskID == s.gone.ID && h.ExpiredAt == nil {
			return fmt.Errorf("expired history row %+v", h)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantHist := map[uuid.UUID]string{s.done.ID: "completed", s.retried.ID: "completed", s.dead.ID: "failed", s.cancelled.ID: "cancelled",
		s.deleted.ID: "deleted", s.gone.ID: "expired", s.queued.ID: "queued", s.busy.ID: "processing"}
	if !reflect.DeepEqual(hist, wantHist) {
		t.Fatalf("history = %v, want %v", hist, wantHist)
	}

	// Stats per creation day.
	st, err := taskviews.StatsFor(ctx, db, s.alice, s.day1, s.day1.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 3 || st.ByStatus["completed"] != 2 || st.ByStatus["failed"] != 1 || st.Files != 4 || st.Bytes != 500 ||
		st.SuccessRate == nil || *st.SuccessRate != 2.0/3 || st.AvgProcessingMS == nil || *st.AvgProcessingMS != (100+50+70+30)/4.0 {
		t.Fatalf("day 1 stats = %+v", st)
	}
	st, _ = taskviews.StatsFor(ctx, db, s.alice, s.day2, time.Time{})
	if st.Total != 5 || st.ByStatus["cancelled"] != 1 || st.ByStatus["deleted"] != 1 || st.ByStatus["expired"] != 1 ||
		st.ByStatus["queued"] != 1 || st.ByStatus["processing"] != 1 || *st.SuccessRate != 1 || st.Files != 6 {
		t.Fatalf("day 2 stats = %+v", st)
	}
	assertStatsMatchHistory(t, ctx, env)
	assertTotalsExact(t, ctx, env, s)
}

// assertTotalsExact holds list totals (summed from task_stats where they
// can be) to a plain count over the table, for ranges that start and end
// at midnight, inside a day, and open.
func assertTotalsExact(t *testing.T, ctx context.Context, env *projtest.Env, s *scenario) {
	t.Helper()
	d1, d2 := taskviews.Day(s.day1), taskviews.Day(s.day2)
	ranges := [][2]time.Time{
		{}, {d1, time.Time{}}, {time.Time{}, d2}, {d1, d2}, {d1, d2.AddDate(0, 0, 1)},
		{s.day1.Add(time.Minute), time.Time{}}, {time.Time{}, s.day2.Add(2 * time.Minute)},
		{s.day1.Add(time.Second), s.day2.Add(3 * time.Minute)}, {s.day2, s.day2.Add(2*time.Minute + time.Second)},
		{d1.AddDate(0, 0, -3), d2.AddDate(0, 0, 5)}, {s.day1.Add(time.Minute), d2.AddDate(0, 0, 1)},
	}
	statuses := [][]string{nil, {"queued"}, {"completed", "failed"}, {"deleted", "expired"}}
	for _, r := range ranges {
		for _, st := range statuses {
			for _, owner := range []uuid.UUID{s.alice, s.bob} {
				f := taskviews.Filter{Owner: owner, Statuses: st, From: r[0], To: r[1]}
				for _, table := range []string{taskviews.TableHistory, taskviews.TableTasks} {
					var want int64
					if err := env.Admin.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE owner_id = $1
						AND ($2::text[] IS NULL OR status = ANY($2)) AND ($3::timestamptz IS NULL OR created_at >= $3)
						AND ($4::timestamptz IS NULL OR created_at < $4)`, owner, st, nullTime(r[0]), nullTime(r[1])).Scan(&want); err != nil {
						t.Fatal(err)
					}
					var total int64
					var err error
					if table == taskviews.TableHistory {
						_, total, err = taskviews.ListHistory(ctx, env.Pool, f, taskviews.SortCreatedDesc, 1, 1)
					} else {
						_, total, err = taskviews.ListTasks(ctx, env.Pool, f, taskviews.SortCreatedDesc, 1, 1)
					}
					if err != nil {
						t.Fatal(err)
					}
					if total != want {
						t.Errorf("%s total for %v %v..%v = %d, want %d", table, st, r[0], r[1], total, want)
					}
				}
			}
		}
	}
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func sameSet(a, b []uuid.UUID) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	cmp := func(p, q uuid.UUID) int { return strings.Compare(p.String(), q.String()) }
	slices.SortFunc(x, cmp)
	slices.SortFunc(y, cmp)
	return slices.Equal(x, y)
}

// assertStatsMatchHistory holds task_stats to its definition: the history
// rows grouped by owner and creation day.
func assertStatsMatchHistory(t *testing.T, ctx context.Context, env *projtest.Env) {
	t.Helper()
	const fromHistory = `SELECT owner_id, day, count(*), count(*) FILTER (WHERE status = 'queued'),
		count(*) FILTER (WHERE status = 'processing'), count(*) FILTER (WHERE status = 'completed'),
		count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'cancelled'),
		count(*) FILTER (WHERE status = 'deleted'), count(*) FILTER (WHERE status = 'expired'),
		count(*) FILTER (WHERE outcome = 'completed'), count(*) FILTER (WHERE outcome = 'failed'),
		sum(processing_ms)::bigint, sum(runs)::bigint, sum(file_count)::bigint, sum(bytes)::bigint FROM task_history GROUP BY 1, 2 ORDER BY 1, 2`
	const fromStats = `SELECT owner_id, day, total, n_queued, n_processing, n_completed, n_failed, n_cancelled, n_deleted, n_expired,
		outcome_completed, outcome_failed, processing_ms, runs, files, bytes FROM task_stats ORDER BY 1, 2`
	h, s := snapshot(t, ctx, env, fromHistory), snapshot(t, ctx, env, fromStats)
	if !reflect.DeepEqual(h, s) {
		t.Fatalf("task_stats differs from task_history:\nstats   %v\nhistory %v", s, h)
	}
}

// snapshot renders a query's rows as strings, for comparisons.
func snapshot(t *testing.T, ctx context.Context, env *projtest.Env, sql string) []string {
	t.Helper()
	rows, err := env.Admin.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals...))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var snapshots = []string{
	"SELECT * FROM tasks ORDER BY task_id",
	"SELECT * FROM task_files ORDER BY task_id, file_id",
	"SELECT * FROM task_history ORDER BY task_id",
	"SELECT * FROM task_stats ORDER BY owner_id, day",
}

func TestRebuildEqualsTheLiveReadModels(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env := projtest.New(t)
	stop := run(t, env)
	s := build(t, ctx, env.Store)
	// More tasks than a batch, so that the rebuild spans transactions.
	var last eventstore.Position
	for i := range 40 {
		b := taskstest.Create(t, ctx, env.Store, s.bob, s.day1.Add(time.Duration(i)*time.Hour), fmt.Sprintf("page %d.png", i)).Claim("w", time.Minute)
		if i%2 == 0 {
			b.Complete("w", "ok", int64(i))
		} else {
			b.Fail("w", "no", int64(i), false)
		}
		last = b.Last
	}
	env.WaitCaughtUp(t, ctx, last, taskviews.Name)
	stop()
	var live [][]string
	for _, q := range snapshots {
		live = append(live, snapshot(t, ctx, env, q))
	}
	cfg := env.Config(taskviews.New())
	cfg.BatchSize = 7
	p, err := projector.Rebuild(ctx, cfg, taskviews.Name, projector.RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Generation != 2 {
		t.Fatalf("rebuild built generation %d", p.Generation)
	}
	for i, q := range snapshots {
		if got := snapshot(t, ctx, env, q); !reflect.DeepEqual(got, live[i]) {
			t.Fatalf("%s: rebuild differs from the live read model:\nrebuilt %v\nlive    %v", q, got, live[i])
		}
	}
	assertStatsMatchHistory(t, ctx, env)
}

func TestQueue(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	run(t, env)
	s := build(t, ctx, env.Store)
	// Requeued after its run failed: queued later than s.queued.
	again := taskstest.Create(t, ctx, env.Store, s.bob, s.day1.Add(-time.Hour), "again.png").Claim("w", time.Minute).Fail("w", "x", 1, false)
	again.At = s.day2.Add(time.Hour)
	again.Retry()
	// A claim whose lease ran out.
	stale := taskstest.Create(t, ctx, env.Store, s.bob, s.day2, "stale.png").Claim("w9", time.Minute)
	env.WaitCaughtUp(t, ctx, stale.Last, taskviews.Name)
	q := taskviews.NewQueue(env.Pool)

	queued, err := q.Queued(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uuid.UUID{s.bobs.ID, s.queued.ID, again.ID}; !slices.Equal(queued, want) {
		t.Fatalf("Queued = %v, want %v (oldest first)", queued, want)
	}
	if one, _ := q.Queued(ctx, 1); len(one) != 1 || one[0] != s.bobs.ID {
		t.Fatalf("Queued(1) = %v", one)
	}
	staleIDs, err := q.StaleClaims(ctx, s.day2.Add(30*time.Minute), 10)
	if err != nil || !slices.Equal(staleIDs, []uuid.UUID{stale.ID}) {
		t.Fatalf("StaleClaims = %v %v, want only the unrenewed claim", staleIDs, err)
	}
	exp, err := q.Expirable(ctx, s.day2, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uuid.UUID{again.ID, s.done.ID, s.bobs.ID, s.retried.ID, s.dead.ID}; !sameSet(exp, want) || exp[0] != again.ID {
		t.Fatalf("Expirable = %v, want %v oldest first", exp, want)
	}
	mine, err := q.ExpirableFor(ctx, s.alice, s.day2, 100)
	if err != nil || !sameSet(mine, []uuid.UUID{s.done.ID, s.retried.ID, s.dead.ID}) {
		t.Fatalf("ExpirableFor = %v %v", mine, err)
	}
	blobs, err := q.LiveBlobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"receipt.png": true, "bob secret.png": true, "private.png": false, "old.png": false, "never.png": true} {
		sum := taskstest.Blob("content of " + name)
		if blobs[sum] != want {
			t.Errorf("LiveBlobs[%s] = %v, want %v", name, blobs[sum], want)
		}
		if ok, err := q.BlobReferenced(ctx, sum); err != nil || ok != want {
			t.Errorf("BlobReferenced(%s) = %v %v, want %v", name, ok, err, want)
		}
	}
}
