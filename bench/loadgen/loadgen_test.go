package loadgen_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authledger/authledger/bench/loadgen"
)

func TestRunCountsEveryCallOfEveryWorker(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := map[int]int{}
	r, err := loadgen.Run(t.Context(), 3, 20*time.Millisecond, func(context.Context, int, int) error {
		time.Sleep(time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := loadgen.Run(t.Context(), 3, 0, func(_ context.Context, worker, _ int) error {
		mu.Lock()
		calls[worker]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops < 3 || r.P50 < time.Millisecond || r.P99 < r.P50 || r.PerSecond() <= 0 {
		t.Fatalf("result %+v", r)
	}
	// Every worker runs at least once, even with no time given.
	if r2.Ops != 3 || len(calls) != 3 {
		t.Fatalf("%d ops over workers %v, want one each", r2.Ops, calls)
	}
}

func TestRunStopsAtTheFirstError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	_, err := loadgen.Run(t.Context(), 4, time.Minute, func(_ context.Context, _, i int) error {
		if i == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

func TestInterleavedKeepsCountingAcrossSlices(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[int]bool{}
	rs, err := loadgen.Interleaved(t.Context(), 1, 30*time.Millisecond, 3,
		func(_ context.Context, _, i int) error {
			mu.Lock()
			defer mu.Unlock()
			if seen[i] {
				return errors.New("an index came twice")
			}
			seen[i] = true
			time.Sleep(time.Millisecond)
			return nil
		},
		func(context.Context, int, int) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Ops != len(seen) || rs[0].Ops < 3 {
		t.Fatalf("results %+v, %d indexes", rs, len(seen))
	}
}

// Slices alternate their order every round: A B, B A, A B, B A runs as
// A, B B, A A, B B, A (five runs of one op).
func TestInterleavedAlternatesTheOrderOfItsSlices(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var runs []string
	op := func(name string) loadgen.Op {
		return func(context.Context, int, int) error {
			mu.Lock()
			defer mu.Unlock()
			if len(runs) == 0 || runs[len(runs)-1] != name {
				runs = append(runs, name)
			}
			time.Sleep(time.Millisecond)
			return nil
		}
	}
	if _, err := loadgen.Interleaved(t.Context(), 1, 40*time.Millisecond, 4, op("A"), op("B")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(runs, " "); got != "A B A B A" {
		t.Fatalf("runs %q, want A B A B A (A, B B, A A, B B, A)", got)
	}
}

func TestRoundsCutsARowIntoAnEvenNumberOfSlicesOfAboutSlice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{2 * loadgen.Slice, 2},
		{loadgen.Slice / 2, 2},
		{8 * loadgen.Slice, 8},
		{6*loadgen.Slice + loadgen.Slice*2/3, 6}, // 6.7 slices: the nearest even count
		{7*loadgen.Slice + loadgen.Slice/2, 8},   // 7.5 slices
	} {
		if got := loadgen.Rounds(tc.d); got != tc.want {
			t.Errorf("Rounds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}
