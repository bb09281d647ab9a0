package bench

// ratelimit.go adds to the limits section the cost of one rate-limit
// decision (httpapi/ratelimit, docs/adr/0026) in process: this instance's
// memory buckets beside the shared counters in Redis, each decision
// allowed (the cost every request pays), over many keys.

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/authledger/authledger/bench/loadgen"
	"github.com/authledger/authledger/httpapi/ratelimit"
)

// rateLimitKeys is how many keys the decisions spread over: the buckets of
// that many clients.
const rateLimitKeys = 10_000

// rateLimitWorkers run decisions at once, as concurrent requests would.
const rateLimitWorkers = 4

// rateLimitRows measures one decision in memory and, when redisURL is set,
// in Redis, and prints their table to w.
func rateLimitRows(ctx context.Context, w io.Writer, hold time.Duration, redisURL string) error {
	// A rate no row reaches: every decision is allowed and takes a token.
	p := ratelimit.Policy{IP: ratelimit.Rate{PerSecond: 1e6, Burst: 1_000_000}}
	type row struct {
		name string
		res  loadgen.Result
	}
	var rows []row
	stores := []struct{ name, url string }{{"memory (per instance)", ""}}
	if redisURL != "" {
		stores = append(stores, struct{ name, url string }{"Redis (shared, GCRA script)", redisURL})
	}
	for _, s := range stores {
		l, err := ratelimit.New(p, ratelimit.Options{RedisURL: s.url})
		if err != nil {
			return fmt.Errorf("bench: rate limit: %w", err)
		}
		res, err := loadgen.Run(ctx, rateLimitWorkers, hold, func(ctx context.Context, worker, i int) error {
			d := l.Allow(ctx, ratelimit.LevelIP, "", strconv.Itoa((i*rateLimitWorkers+worker)%rateLimitKeys))
			if !d.Allowed || (s.url != "" && d.Store != "redis") {
				return fmt.Errorf("decision %+v", d)
			}
			return nil
		})
		_ = l.Close()
		if err != nil {
			return fmt.Errorf("bench: rate limit: %s: %w", s.name, err)
		}
		rows = append(rows, row{s.name, res})
	}
	fmt.Fprintf(w, "\n## One rate-limit decision (in process, %d workers, %d keys, each row %s)\n", rateLimitWorkers, rateLimitKeys, hold)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "store\tdecisions/s\tp50\tp99\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t\n", r.name, r.res.PerSecond(), benchUS(r.res.P50), benchUS(r.res.P99))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if redisURL == "" {
		fmt.Fprintln(w, "\nNo Redis row: run with -redis URL (make bench starts a redis-server for it).")
	}
	return nil
}

func benchUS(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}
