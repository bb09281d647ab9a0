package tasksbench_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/bench/tasksbench"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/projections/taskviews"
)

func TestSeedIsConsistent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := projtest.New(t)
	owner, other := uuid.New(), uuid.New()
	got, err := tasksbench.Seed(ctx, env.Pool, owner, 2000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasksbench.Seed(ctx, env.Pool, other, 50); err != nil {
		t.Fatal(err)
	}
	items, total, err := taskviews.ListHistory(ctx, env.Pool, taskviews.Filter{Owner: owner}, taskviews.SortCreatedDesc, 1, 20)
	if err != nil || total != 2000 || len(items) != 20 {
		t.Fatalf("history: %d of %d, %v", len(items), total, err)
	}
	live, ltotal, err := taskviews.ListTasks(ctx, env.Pool, taskviews.Filter{Owner: owner}, taskviews.SortCreatedDesc, 1, 5)
	if err != nil || ltotal != int64(got.Live) || len(live) != 5 {
		t.Fatalf("tasks: %d of %d (seeded %d live), %v", len(live), ltotal, got.Live, err)
	}
	st, err := taskviews.StatsFor(ctx, env.Pool, owner, time.Time{}, time.Time{})
	if err != nil || st.Total != 2000 || st.Files != int64(got.Files) || st.SuccessRate == nil {
		t.Fatalf("stats %+v, %v", st, err)
	}
	// The stats rows agree with the history rows they summarise.
	var byStatus = map[string]int64{}
	err = taskviews.EachHistory(ctx, env.Pool, taskviews.Filter{Owner: owner}, taskviews.SortCreatedAsc, func(h taskviews.HistoryEntry) error {
		byStatus[h.Status]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range taskviews.Statuses {
		if byStatus[s] == 0 {
			delete(byStatus, s)
		}
	}
	want := map[string]int64{}
	for s, n := range st.ByStatus {
		if n > 0 {
			want[s] = n
		}
	}
	if !reflect.DeepEqual(byStatus, want) {
		t.Fatalf("history by status %v, stats %v", byStatus, want)
	}
	found, n, err := taskviews.ListHistory(ctx, env.Pool, taskviews.Filter{Owner: owner, Query: "DOCUMENT-123-"}, taskviews.SortCreatedDesc, 1, 20)
	if err != nil || n != 1 || found[0].FileNames[0] != "document-123-0.png" {
		t.Fatalf("search: %+v (%d), %v", found, n, err)
	}
	// A search's pages list exactly what streaming the same filter does,
	// in every order, and only the owner's tasks (the other user's files
	// have the same names); every page, the last one (whose count comes
	// from its length) and the empty one after it have the right total.
	search := taskviews.Filter{Owner: owner, Query: "document-1"}
	for _, sort := range taskviews.Sorts {
		var want []uuid.UUID
		if err := taskviews.EachHistory(ctx, env.Pool, search, sort, func(h taskviews.HistoryEntry) error {
			want = append(want, h.TaskID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var paged []uuid.UUID
		for page := 1; ; page++ {
			items, total, err := taskviews.ListHistory(ctx, env.Pool, search, sort, page, 37)
			if err != nil || total != int64(len(want)) {
				t.Fatalf("%s page %d: total %d, want %d, %v", sort, page, total, len(want), err)
			}
			if len(items) == 0 {
				break
			}
			for _, it := range items {
				paged = append(paged, it.TaskID)
			}
		}
		if len(want) < 100 || !slices.Equal(paged, want) {
			t.Fatalf("%s: pages list %d tasks, the stream %d, or in another order", sort, len(paged), len(want))
		}
	}
}

// BenchmarkHistoryPage measures one GET /v1/history page query (count and
// rows) for a user with 100,000 tasks among other users' tasks, and
// reports its p50 and p99:
//
//	scripts/pg.sh with-temp go test -run '^$' -bench HistoryPage ./bench/tasksbench
func BenchmarkHistoryPage(b *testing.B) {
	ctx := context.Background()
	env := projtest.New(b)
	owner := uuid.New()
	if _, err := tasksbench.Seed(ctx, env.Pool, owner, 100_000); err != nil {
		b.Fatal(err)
	}
	for range 5 {
		if _, err := tasksbench.Seed(ctx, env.Pool, uuid.New(), 10_000); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		f    taskviews.Filter
		page int
	}{
		{"first-page", taskviews.Filter{Owner: owner}, 1},
		{"status", taskviews.Filter{Owner: owner, Statuses: []string{taskviews.StatusFailed}}, 1},
		{"date-range", taskviews.Filter{Owner: owner, From: time.Now().AddDate(0, -1, 0)}, 1},
		{"search", taskviews.Filter{Owner: owner, Query: "document-4242-"}, 1},
		{"page-50", taskviews.Filter{Owner: owner}, 50},
	} {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				if _, _, err := taskviews.ListHistory(ctx, env.Pool, c.f, taskviews.SortCreatedDesc, c.page, 20); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
