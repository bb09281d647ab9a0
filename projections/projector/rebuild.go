package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
)

// ErrUnknownProjection: Rebuild was asked for a projection it does not have.
var ErrUnknownProjection = errors.New("projections: unknown projection")

// ErrRebuildRunning: another rebuild of the projection holds its lock.
var ErrRebuildRunning = errors.New("projections: a rebuild of this projection is already running")

// RebuildBatchSize is the smallest batch a rebuild commits (Config.BatchSize
// when larger).
const RebuildBatchSize = 2000

// Rebuild phases reported in Progress.Phase.
const (
	PhaseBuilding = "building"
	PhaseSwapping = "swapping"
	PhaseDone     = "done"
)

// Progress is a rebuild's progress, reported periodically to
// RebuildOptions.Progress (a CLI renders it as a progress bar).
type Progress struct {
	Projection string
	Generation int
	Phase      string
	// Applied is how many events the new generation holds so far.
	Applied int64
	// Total estimates how many events the rebuild will apply: the serving
	// generation's count when the rebuild started (0 when unknown, for a
	// projection that never ran). Events appended meanwhile may push
	// Applied past it.
	Total    int64
	Position eventstore.Position
	// EventsPerSecond is the average rate since the rebuild started.
	EventsPerSecond float64
	Elapsed         time.Duration
	// ETA is the estimated time left (0 when unknown or done).
	ETA time.Duration
}

// RebuildOptions tunes Rebuild.
type RebuildOptions struct {
	// Progress, when set, receives the progress every ProgressInterval
	// (default 500ms) and once per phase change. It runs on the
	// rebuild's reporting goroutine; keep it quick.
	Progress         func(Progress)
	ProgressInterval time.Duration
}

// Rebuild rebuilds the projection called name from the start of the log
// into a new generation of its tables while the current generation keeps
// serving, then, in one transaction, points the views at the new tables and
// moves the live checkpoint to where the rebuild ended. A live runner (in
// this process or another) notices the moved checkpoint at its next batch
// and continues from there on the new tables, so no event appended during
// the rebuild is lost or applied twice. The old generation's tables are
// dropped afterwards.
//
// cfg needs Store, Pool and the projection among Projections; the batch
// settings apply. Only one rebuild of a projection runs at a time
// (ErrRebuildRunning).
func Rebuild(ctx context.Context, cfg Config, name string, opts RebuildOptions) (Progress, error) {
	if err := cfg.Validate(); err != nil {
		return Progress{}, err
	}
	cfg.setDefaults()
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 500 * time.Millisecond
	}
	i := slices.IndexFunc(cfg.Projections, func(q Projection) bool { return q.Name() == name })
	if i < 0 {
		return Progress{}, fmt.Errorf("%w: %s", ErrUnknownProjection, name)
	}
	p := cfg.Projections[i]
	if err := Setup(ctx, cfg.Pool, p); err != nil {
		return Progress{}, err
	}
	unlock, err := tryLock(ctx, cfg.Pool, name, "rebuild")
	if err != nil {
		return Progress{}, err
	}
	defer unlock()

	// A rebuild is a bulk load: bigger transactions cost fewer commits.
	cfg.BatchSize = max(cfg.BatchSize, RebuildBatchSize)
	cfg.BatchTimeout = max(cfg.BatchTimeout, time.Second)
	e := &engine{store: cfg.Store, pool: cfg.Pool, cfg: cfg, logger: cfg.Logger.With("component", "projections", "rebuild", name)}
	gen, total, err := prepareRebuild(ctx, cfg.Pool, p)
	if err != nil {
		return Progress{}, fmt.Errorf("projections: prepare rebuild of %s: %w", name, err)
	}

	// Events appended after this point may be applied by the rebuild or,
	// after the swap, by the live runner: either way once.
	head, err := cfg.Store.Head(ctx)
	if err != nil {
		return Progress{}, fmt.Errorf("projections: head: %w", err)
	}
	prog := &rebuildProgress{prog: Progress{Projection: name, Generation: gen, Phase: PhaseBuilding, Total: total}, start: time.Now(), sink: opts.Progress}
	defer prog.every(opts.ProgressInterval)()
	prog.report()
	if err := buildAndSwap(ctx, e, p, gen, head, prog); err != nil {
		return prog.snapshot(), err
	}
	if err := dropStaleGenerations(ctx, cfg.Pool, p); err != nil {
		e.logger.Warn("could not drop the old generation yet; the next runner start or rebuild will", "error", err)
	}
	prog.phase(PhaseDone)
	return prog.snapshot(), nil
}

// buildAndSwap builds generation gen up to target and swaps it in, in
// rounds: while the serving generation is ahead (a live runner kept
// going), the rebuild first catches up with it, so that the checkpoint
// never moves back and no read-your-writes wait that it satisfied is
// undone.
func buildAndSwap(ctx context.Context, e *engine, p Projection, gen int, target eventstore.Position, prog *rebuildProgress) error {
	name := p.Name()
	for round := 1; ; round++ {
		prog.set(PhaseBuilding)
		if err := build(ctx, e, p, target, prog.committed); err != nil {
			return fmt.Errorf("projections: rebuild of %s: %w", name, err)
		}
		if ix, ok := p.(Indexer); ok && round == 1 {
			err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error { return ix.CreateIndexes(ctx, tx, Tables{Generation: gen}) })
			if err != nil {
				return fmt.Errorf("projections: index generation %d of %s: %w", gen, name, err)
			}
		}
		prog.phase(PhaseSwapping)
		err := swapRetrying(ctx, e, p, gen)
		var behind *behindError
		if errors.As(err, &behind) && round < 100 {
			target = behind.live
			continue
		}
		if err != nil {
			return fmt.Errorf("projections: swap %s to generation %d: %w", name, gen, err)
		}
		return nil
	}
}

// swapRetrying swaps, retrying (up to 10 times) while it fails for a
// transient reason.
func swapRetrying(ctx context.Context, e *engine, p Projection, gen int) error {
	var err error
	for attempt := 1; attempt <= 10; attempt++ {
		err = swap(ctx, e.pool, p, gen)
		if err == nil || !isTransient(err) || ctx.Err() != nil {
			return err
		}
		e.logger.Warn("swap failed; retrying", "attempt", attempt, "error", err)
		sleep(ctx, backoff(e.cfg.RetryBackoff, e.cfg.MaxBackoff, attempt))
	}
	return err
}

// rebuildProgress is a rebuild's Progress as its commits and phases move
// it; sink (RebuildOptions.Progress) hears of it.
type rebuildProgress struct {
	mu    sync.Mutex
	prog  Progress
	start time.Time
	sink  func(Progress)
}

func (r *rebuildProgress) snapshot() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.prog
	q.Elapsed = time.Since(r.start)
	if s := q.Elapsed.Seconds(); s > 0 {
		q.EventsPerSecond = float64(q.Applied) / s
	}
	if q.Phase == PhaseBuilding && q.EventsPerSecond > 0 && q.Total > q.Applied {
		q.ETA = time.Duration(float64(q.Total-q.Applied) / q.EventsPerSecond * float64(time.Second))
	}
	return q
}

func (r *rebuildProgress) report() {
	if r.sink != nil {
		r.sink(r.snapshot())
	}
}

func (r *rebuildProgress) set(phase string) {
	r.mu.Lock()
	r.prog.Phase = phase
	r.mu.Unlock()
}

// phase enters a phase and reports it at once.
func (r *rebuildProgress) phase(phase string) {
	r.set(phase)
	r.report()
}

// committed is the rebuild binding's onCommit.
func (r *rebuildProgress) committed(cp checkpoint, _ int, _ time.Duration) {
	r.mu.Lock()
	r.prog.Applied, r.prog.Position = cp.EventsApplied, cp.Position
	r.mu.Unlock()
}

// every reports every interval until the returned stop is called.
func (r *rebuildProgress) every(interval time.Duration) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				r.report()
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// prepareRebuild creates the next generation's tables and its rebuild row,
// discarding an abandoned rebuild. It returns the generation and the
// expected number of events (the serving generation's count).
func prepareRebuild(ctx context.Context, pool *pgxpool.Pool, p Projection) (gen int, total int64, err error) {
	// Drop the tables of an abandoned rebuild first (outside the creating
	// transaction, with a lock timeout).
	if _, err := pool.Exec(ctx, "DELETE FROM projection_rebuilds WHERE name = $1", p.Name()); err != nil {
		return 0, 0, err
	}
	if err := dropStaleGenerations(ctx, pool, p); err != nil {
		return 0, 0, err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var live int
		if err := tx.QueryRow(ctx, "SELECT generation, events_applied FROM projection_checkpoints WHERE name = $1", p.Name()).Scan(&live, &total); err != nil {
			return err
		}
		// Skip generation numbers whose tables still exist (a drop that
		// timed out).
		gen = live + 1
		for {
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", Tables{Generation: gen}.Name(p.Tables()[0])).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				break
			}
			gen++
		}
		if err := p.CreateTables(ctx, tx, Tables{Generation: gen}); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO projection_rebuilds (name, generation, position) VALUES ($1, $2, $3)`,
			p.Name(), gen, eventstore.Position{}.String())
		return err
	})
	return gen, total, err
}

// build runs the rebuild's subscription (the same binding as the live
// runner's, on the rebuild's own checkpoint row) until its checkpoint
// reaches target or nothing is left to deliver.
func build(ctx context.Context, e *engine, p Projection, target eventstore.Position, onCommit func(checkpoint, int, time.Duration)) error {
	b := &binding{e: e, p: p, sink: rebuildSink(p.Name()), stopAt: target, onCommit: onCommit}
	return b.supervise(ctx)
}

// behindError: the rebuild has not reached the serving generation's
// checkpoint yet.
type behindError struct{ live eventstore.Position }

func (b *behindError) Error() string {
	return "rebuild is behind the serving checkpoint " + b.live.String()
}

// swap makes generation gen the serving one: in one transaction it moves
// the live checkpoint to the rebuild's and repoints the views. Taking the
// live checkpoint row lock first waits for a live batch in flight; that
// runner then finds the checkpoint moved and reloads.
func swap(ctx context.Context, pool *pgxpool.Pool, p Projection, gen int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
			return err
		}
		var livePos string
		if err := tx.QueryRow(ctx, "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", p.Name()).Scan(&livePos); err != nil {
			return err
		}
		rb, err := rebuildSink(p.Name()).load(ctx, tx)
		if err != nil {
			return err
		}
		if livePos > rb.Position.String() {
			live, _ := eventstore.ParsePosition(livePos)
			return &behindError{live: live}
		}
		if rb.Generation != gen {
			return fmt.Errorf("rebuild row is for generation %d, not %d", rb.Generation, gen)
		}
		if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET generation = $2, position = $3, events_applied = $4,
				last_event_id = $5, last_recorded_at = $6, updated_at = now() WHERE name = $1`,
			p.Name(), gen, rb.Position.String(), rb.EventsApplied, rb.LastEventID, rb.LastRecordedAt); err != nil {
			return err
		}
		if err := publishViews(ctx, tx, p, Tables{Generation: gen}); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "DELETE FROM projection_rebuilds WHERE name = $1", p.Name())
		return err
	})
}

// tryLock takes an advisory lock on a dedicated connection, failing with
// ErrRebuildRunning when another session holds it.
func tryLock(ctx context.Context, pool *pgxpool.Pool, name, kind string) (func(), error) {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("projections: lock connection: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+lockKeySQL+")", name, kind).Scan(&ok); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("projections: advisory lock: %w", err)
	}
	if !ok {
		_ = conn.Close(context.Background())
		return nil, ErrRebuildRunning
	}
	return func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(cctx, "SELECT pg_advisory_unlock("+lockKeySQL+")", name, kind)
		_ = conn.Close(cctx)
	}, nil
}
