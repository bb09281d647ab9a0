// Package projbench measures the projection runtime on the audit trail:
// rebuild throughput from a large log, and live lag (append to visible in
// the read model) at a steady append rate. The bench command calls Run and
// prints its table.
package projbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/bench/loadgen"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/projector"
)

// Config tunes Run. Zero fields take the defaults.
type Config struct {
	// Store is the log; Pool holds the read models (same database for the
	// PostgreSQL store). Required.
	Store eventstore.Store
	Pool  *pgxpool.Pool
	// Events is the size the log is filled up to before the rebuild
	// (default 200,000). Existing events count.
	Events int
	// Rate is the steady append rate of the lag measurement, per second
	// (default 500), for Duration (default 20s).
	Rate     int
	Duration time.Duration
	// Logger receives the runtime's logs (default: discarded).
	Logger *slog.Logger
	// Progress, when set, receives the rebuild's progress.
	Progress func(projector.Progress)
}

// Result holds the figures.
type Result struct {
	LogEvents        int64
	RebuildEvents    int64
	RebuildElapsed   time.Duration
	RebuildPerSecond float64
	Rate             int
	Samples          int
	LagP50           time.Duration
	LagP99           time.Duration
	LagMax           time.Duration
}

// benchAuditKey chains the scratch database's audit trail.
var benchAuditKey = []byte("projbench audit chain key, 32 B.")

// Run fills the log, rebuilds the audit trail, then measures live lag with
// a runner in this process, and writes a Markdown table to w.
func Run(ctx context.Context, cfg Config, w io.Writer) (Result, error) {
	if cfg.Store == nil || cfg.Pool == nil {
		return Result{}, errors.New("projbench: Store and Pool are required")
	}
	if cfg.Events == 0 {
		cfg.Events = 200_000
	}
	if cfg.Rate == 0 {
		cfg.Rate = 500
	}
	if cfg.Duration == 0 {
		cfg.Duration = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var res Result
	// The scratch log's trail is chained under a key of its own: any key
	// costs the same.
	trail := audit.New(benchAuditKey)
	rcfg := projector.Config{Store: cfg.Store, Pool: cfg.Pool, Projections: []projector.Projection{trail}, Logger: cfg.Logger}

	// 1. Fill the log.
	have, err := countEvents(ctx, cfg.Pool)
	if err != nil {
		return res, err
	}
	if missing := cfg.Events - int(have); missing > 0 {
		if err := Fill(ctx, cfg.Store, missing); err != nil {
			return res, err
		}
	}
	if res.LogEvents, err = countEvents(ctx, cfg.Pool); err != nil {
		return res, err
	}

	// Measure steady state, not the aftermath of the bulk load: vacuum and
	// analyse what was just written and checkpoint, so that autovacuum and
	// the checkpointer do not run during the measurements.
	settle(ctx, cfg.Pool, "events")

	// 2. Rebuild the audit trail from the whole log.
	if err := projector.Setup(ctx, cfg.Pool, trail); err != nil {
		return res, err
	}
	p, err := projector.Rebuild(ctx, rcfg, audit.Name, projector.RebuildOptions{Progress: cfg.Progress})
	if err != nil {
		return res, err
	}
	res.RebuildEvents, res.RebuildElapsed = p.Applied, p.Elapsed
	res.RebuildPerSecond = float64(p.Applied) / p.Elapsed.Seconds()

	settle(ctx, cfg.Pool, audit.Table+fmt.Sprintf("_g%d", p.Generation))

	// 3. Live lag at a steady rate.
	lags, err := liveLag(ctx, cfg, rcfg)
	if err != nil {
		return res, err
	}
	lag := loadgen.Summarise(lags, 0)
	res.Rate, res.Samples = cfg.Rate, len(lags)
	res.LagP50, res.LagP99 = lag.P50, lag.P99
	if len(lags) > 0 {
		res.LagMax = lags[len(lags)-1]
	}
	Print(w, res)
	return res, nil
}

// Print writes res as Markdown table rows.
func Print(w io.Writer, res Result) {
	fmt.Fprintf(w, "| benchmark | result |\n|---|---|\n")
	fmt.Fprintf(w, "| audit trail rebuild (log of %d events) | %.0f events/s (%d events in %s) |\n",
		res.LogEvents, res.RebuildPerSecond, res.RebuildEvents, res.RebuildElapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "| audit trail live lag at %d appends/s (%d samples) | p50 %.1f ms, p99 %.1f ms, max %.1f ms |\n",
		res.Rate, res.Samples, ms(res.LagP50), ms(res.LagP99), ms(res.LagMax))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// settle vacuums and analyses table and asks for a checkpoint. Failures
// (no privilege for CHECKPOINT) only make the figures noisier.
func settle(ctx context.Context, pool *pgxpool.Pool, table string) {
	_, _ = pool.Exec(ctx, "VACUUM (ANALYZE) "+table)
	_, _ = pool.Exec(ctx, "CHECKPOINT")
}

func countEvents(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	// The PostgreSQL store's table; other stores are filled to Events anyway.
	err := pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("projbench: count events: %w", err)
	}
	return n, nil
}

func benchEvent(i int) eventstore.EventData {
	id := uuid.New()
	data, _ := json.Marshal(map[string]any{"user_id": fmt.Sprintf("u-%d", i%1000), "email": fmt.Sprintf("user%d@example.com", i%1000), "password_hash": "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", "attempt": i})
	md, _ := events.EncodeMetadata(events.Metadata{EventID: id, OccurredAt: time.Now().UTC(), CorrelationID: id.String(),
		Actor: events.Actor{Kind: events.ActorUser, ID: fmt.Sprintf("u-%d", i%1000)}, ClientIP: "203.0.113.9", UserAgent: "projbench/1"})
	return eventstore.EventData{ID: id, Type: "bench.happened.v1", Data: data, Metadata: md}
}

// Fill appends n events, 100 per append, from 4 writers.
func Fill(ctx context.Context, store eventstore.Store, n int) error {
	const per = 100
	chunks := (n + per - 1) / per
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 4)
	run := uuid.NewString()[:8]
	for wkr := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1)) - 1
				if c >= chunks || ctx.Err() != nil {
					return
				}
				k := min(per, n-c*per)
				evs := make([]eventstore.EventData, k)
				for i := range evs {
					evs[i] = benchEvent(c*per + i)
				}
				if _, err := store.Append(ctx, fmt.Sprintf("bench-%s-%d", run, c), eventstore.NoStream{}, evs...); err != nil {
					errs[wkr] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

func liveLag(ctx context.Context, cfg Config, rcfg projector.Config) (_ []time.Duration, err error) {
	r, err := projector.NewRunner(rcfg)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		cancel()
		if runErr := <-done; runErr != nil && err == nil {
			err = fmt.Errorf("runner: %w", runErr)
		}
	}()
	waiter := projector.NewWaiter(cfg.Pool, r, 0)
	// Let the runner catch up with the log first.
	head, err := cfg.Store.Head(ctx)
	if err != nil {
		return nil, err
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
	err = waiter.WaitFor(wctx, head, audit.Name)
	wcancel()
	if err != nil {
		return nil, fmt.Errorf("projbench: runner catch-up: %w", err)
	}

	var mu sync.Mutex
	var lags []time.Duration
	var failures atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(cfg.Rate))
	defer tick.Stop()
	end := time.Now().Add(cfg.Duration)
	run := uuid.NewString()[:8]
	for i := 0; time.Now().Before(end); i++ {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			res, err := cfg.Store.Append(ctx, fmt.Sprintf("lag-%s-%d", run, i%64), eventstore.Any{}, benchEvent(i))
			if err != nil {
				failures.Add(1)
				return
			}
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := waiter.WaitFor(wctx, res.Position, audit.Name); err != nil {
				failures.Add(1)
				return
			}
			d := time.Since(start)
			mu.Lock()
			lags = append(lags, d)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if f := failures.Load(); f > 0 {
		return lags, fmt.Errorf("projbench: %d appends or waits failed", f)
	}
	return lags, nil
}
