// Package loadgen drives closed-loop load for the benchmarks: workers call
// an operation back to back for a while, every call's latency is kept, and
// a row is summarised as operations, wall time, p50 and p99. The bench
// command's sections and the read API's benchmark share it, so that every
// table's figures are taken the same way.
package loadgen

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// Op is one operation of a row: worker is 0..workers-1, i counts that
// worker's calls from 0.
type Op func(ctx context.Context, worker, i int) error

// Result is one measured row.
type Result struct {
	Ops      int
	Elapsed  time.Duration
	P50, P99 time.Duration
}

// PerSecond is operations over wall time.
func (r Result) PerSecond() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// Summarise sorts lat (in place) and summarises it over elapsed.
func Summarise(lat []time.Duration, elapsed time.Duration) Result {
	slices.Sort(lat)
	r := Result{Ops: len(lat), Elapsed: elapsed}
	if len(lat) > 0 {
		r.P50 = lat[len(lat)*50/100]
		r.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return r
}

// Run calls op from workers goroutines until d has passed (each worker at
// least once) and summarises the latencies.
func Run(ctx context.Context, workers int, d time.Duration, op Op) (Result, error) {
	lat, elapsed, err := Latencies(ctx, workers, d, op)
	if err != nil {
		return Result{}, err
	}
	return Summarise(lat, elapsed), nil
}

// Latencies is Run without the summary: every call's latency and the wall
// time. The first error stops every worker and is returned.
func Latencies(ctx context.Context, workers int, d time.Duration, op Op) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1024)
			var err error
			for i := 0; ctx.Err() == nil && (i == 0 || time.Now().Before(deadline)); i++ {
				t0 := time.Now()
				if err = op(ctx, w, i); err != nil {
					cancel()
					break
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, local...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return lat, time.Since(start), firstErr
}

// Slice is about how long Rounds makes each slice of an interleaved row:
// long enough to outlast a slice's drain (a slice ends by waiting for its
// slowest call, over half a second for a password login at 32 clients),
// short enough that a 3 s row still alternates A B, B A.
const Slice = 1500 * time.Millisecond

// Rounds is how many rounds of Interleaved cut a row of duration d into
// slices of about Slice each: an even number, so that the A B and B A
// rounds pair up, and at least two. A longer row then alternates more
// often instead of running longer slices, so that a machine whose speed
// wanders weighs on a baseline and its row alike.
func Rounds(d time.Duration) int {
	return max(2, 2*int(math.Round(float64(d)/float64(2*Slice))))
}

// Interleaved measures ops side by side: each runs for d in total, in
// rounds alternating slices, so that a baseline and the row compared with
// it see the same background load (the machine is shared, and a load that
// changes between two back-to-back rows would skew their ratio). Every
// other round runs the ops in reverse order (A B, B A, A B, ...), so that
// over an even number of rounds a load that rises or falls steadily
// weighs on each op alike. Each op's i keeps counting across its slices;
// latencies are pooled.
func Interleaved(ctx context.Context, workers int, d time.Duration, rounds int, ops ...Op) ([]Result, error) {
	lat := make([][]time.Duration, len(ops))
	elapsed := make([]time.Duration, len(ops))
	for r := range rounds {
		for j := range ops {
			k := j
			if r%2 == 1 {
				k = len(ops) - 1 - j
			}
			op := ops[k]
			offset := len(lat[k])
			l, e, err := Latencies(ctx, workers, d/time.Duration(rounds), func(ctx context.Context, worker, i int) error {
				return op(ctx, worker, offset+i)
			})
			if err != nil {
				return nil, err
			}
			lat[k] = append(lat[k], l...)
			elapsed[k] += e
		}
	}
	out := make([]Result, len(ops))
	for k := range ops {
		out[k] = Summarise(lat[k], elapsed[k])
	}
	return out, nil
}
