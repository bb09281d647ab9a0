package projector

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
)

// engine is what the live runner and rebuilds share.
type engine struct {
	store   eventstore.Store
	pool    *pgxpool.Pool
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
}

// binding is one projection's subscription: where its checkpoint lives and
// what to do around commits.
type binding struct {
	e    *engine
	p    Projection
	sink sink
	// live bindings hold the projection's advisory lock and report state;
	// a rebuild binding stops once caught up.
	live bool
	// stopAt (rebuilds): the rebuild has caught up once its checkpoint
	// reaches this position (the head when it started).
	stopAt eventstore.Position
	// onCommit hears of each commit: the checkpoint written, the events
	// applied and how long the transaction was open.
	onCommit func(cp checkpoint, n int, open time.Duration)
	// onScanned (live bindings) hears of progress through filtered-out
	// events before it is written (see Config.CheckpointInterval).
	onScanned func(p eventstore.Position)
	onState   func(state string, f *failure)
}

// supervise runs the projection until ctx is done, it fails for good, or
// (rebuild) it has caught up, and returns why it stopped: nil for a
// rebuild that caught up, the failure of an event tried MaxAttempts
// times, or ctx's error. Live bindings first take the projection's
// advisory lock, so that one instance at a time runs a projection.
func (b *binding) supervise(ctx context.Context) error {
	rs := &retryState{}
	for ctx.Err() == nil {
		runCtx, release, err := b.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			b.log().Warn("projection lock unavailable", "error", err)
			sleep(ctx, b.e.cfg.MaxBackoff)
			continue
		}
		stop, err := b.runLocked(runCtx, rs)
		release()
		if stop {
			return err
		}
	}
	return ctx.Err()
}

// runLocked runs passes while ctx (the lock) holds, each from the
// checkpoint, until one ends the binding (stop, with the outcome).
func (b *binding) runLocked(ctx context.Context, rs *retryState) (stop bool, err error) {
	for ctx.Err() == nil && !stop {
		stop, err = b.resolve(ctx, b.runFromCheckpoint(ctx, rs), rs)
	}
	return stop, err
}

// runFromCheckpoint loads the checkpoint and runs a pass from it.
func (b *binding) runFromCheckpoint(ctx context.Context, rs *retryState) error {
	cp, err := b.sink.load(ctx, b.e.pool)
	if err != nil {
		return err
	}
	if rs.attempts == 0 {
		// The checkpoint loaded: the database answers again after an
		// outage (the state is recorded on change).
		b.state(StateRunning, nil)
	}
	return b.run(ctx, cp, rs)
}

// resolve decides what follows a pass that ended with err, and reports
// whether the binding stops (with its outcome): a rebuild that caught up,
// or an event tried MaxAttempts times. Anything else resumes from the
// checkpoint after a backoff: a failed event or batch counts towards
// MaxAttempts (and single-steps), an outage is retried forever.
func (b *binding) resolve(ctx context.Context, err error, rs *retryState) (stop bool, outcome error) {
	var af *applyFailure
	var bf *batchFailure
	switch {
	case ctx.Err() != nil:
	case errors.Is(err, errDone):
		return true, nil
	case errors.Is(err, errStale):
		b.log().Info("checkpoint moved (rebuild swap or another instance); reloading")
	case errors.As(err, &af) && !isTransient(af.err):
		if b.eventFailed(ctx, af, rs) {
			return true, af
		}
	case errors.As(err, &bf) && !isTransient(bf.err):
		b.e.metricFailure(b.p.Name())
		b.log().Warn("batch failed; retrying one event per transaction", "up_to", bf.last.String(), "error", bf.err)
		rs.singleStepUntil = bf.last
		sleep(ctx, b.e.cfg.RetryBackoff)
	default:
		rs.interruptions++
		b.log().Warn("projection interrupted; resuming from the checkpoint", "error", err, "retry", rs.interruptions)
		if rs.attempts == 0 {
			b.state(StateRetrying, &failure{Err: err})
		}
		sleep(ctx, backoff(b.e.cfg.RetryBackoff, b.e.cfg.MaxBackoff, rs.interruptions))
	}
	return false, nil
}

// eventFailed counts a failed attempt at an event: the projection retries
// it, single-stepping, or stops as failed after MaxAttempts (the event is
// never skipped).
func (b *binding) eventFailed(ctx context.Context, af *applyFailure, rs *retryState) (stop bool) {
	cfg := b.e.cfg
	attempts := rs.failed(af)
	b.e.metricFailure(b.p.Name())
	f := &failure{EventID: af.ev.ID, EventType: af.ev.Type, Position: af.ev.Position, Err: af.err}
	if attempts >= cfg.MaxAttempts {
		b.log().Error("projection stopped: cannot apply event; fix the cause and restart the runner (the event is not skipped)",
			"event_id", af.ev.ID, "event_type", af.ev.Type, "stream", af.ev.Stream,
			"position", af.ev.Position.String(), "attempts", attempts, "error", af.err)
		b.state(StateFailed, f)
		return true
	}
	b.log().Warn("cannot apply event; retrying", "event_id", af.ev.ID, "event_type", af.ev.Type,
		"attempt", attempts, "max_attempts", cfg.MaxAttempts, "error", af.err)
	b.state(StateRetrying, f)
	sleep(ctx, backoff(cfg.RetryBackoff, cfg.MaxBackoff, attempts))
	return false
}

// state reports the binding's state (live bindings).
func (b *binding) state(s string, f *failure) {
	if b.onState != nil {
		b.onState(s, f)
	}
}

func (b *binding) log() *slog.Logger { return b.e.logger.With("projection", b.p.Name()) }
