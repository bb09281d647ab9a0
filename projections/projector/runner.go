package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authledger/authledger/eventstore"
)

// Runner runs projections live, each on its own store subscription and
// goroutine. Several processes may run the same projections against one
// database: each projection runs in the instance that holds its advisory
// lock; the others stand by and take over when that instance goes away.
type Runner struct {
	e        *engine
	bindings []*binding
	hub      *Hub
	// running is closed once Run has started the projections.
	running chan struct{}

	// followers are the local followers (Config.Followers); started is
	// when the runner was built, the reference of a follower's lag before
	// it was first vouched for.
	followers []*follower
	started   time.Time

	// setUp is set once the projections' tables exist (Setup); setupErr is
	// the last set-up failure before that.
	setUp    atomic.Bool
	setupErr atomic.Value

	mu     sync.Mutex
	states map[string]localState
	// lag is each projection's last measured lag in seconds (lagLoop).
	lag map[string]float64
}

type localState struct {
	State string
	Fail  *failure
}

// NewRunner validates cfg and builds the runner. Nothing runs until Run.
func NewRunner(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("projections: metrics: %w", err)
	}
	e := &engine{store: cfg.Store, pool: cfg.Pool, cfg: cfg, logger: cfg.Logger.With("component", "projections"), metrics: m}
	r := &Runner{e: e, hub: newHub(), running: make(chan struct{}), states: map[string]localState{}, lag: map[string]float64{}, started: time.Now()}
	for _, p := range cfg.Projections {
		name := p.Name()
		r.states[name] = localState{State: StateIdle}
		// Every series exists from the start, at zero.
		m.applied.WithLabelValues(name)
		m.failures.WithLabelValues(name)
		m.commits.WithLabelValues(name)
		m.lagEvents.WithLabelValues(name)
		m.lagSeconds.WithLabelValues(name)
		m.failed.WithLabelValues(name).Set(0)
		m.batchSeconds.WithLabelValues(name)
		r.bindings = append(r.bindings, &binding{
			e: e, p: p, sink: liveSink(name), live: true,
			onCommit: func(cp checkpoint, n int, open time.Duration) {
				m.applied.WithLabelValues(name).Add(float64(n))
				m.commits.WithLabelValues(name).Inc()
				m.batchSeconds.WithLabelValues(name).Observe(open.Seconds())
				m.position.WithLabelValues(name).Set(float64(cp.Position.Commit))
				r.hub.advance(name, cp.Position)
			},
			onScanned: func(p eventstore.Position) { r.hub.advance(name, p) },
			onState:   func(state string, f *failure) { r.setState(name, state, f) },
		})
	}
	for _, f := range cfg.Followers {
		if err := r.AddFollower(f); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// AddFollower adds a local follower (see Follower) to a runner that has not
// started yet: one built before its dependencies, such as the worker, which
// waits on this runner.
func (r *Runner) AddFollower(f Follower) error {
	for _, g := range r.followers {
		if g.spec.Name == f.Name {
			return fmt.Errorf("projections: duplicate follower %s", f.Name)
		}
	}
	if _, ok := r.states[f.Name]; ok || f.Name == "" || f.Handle == nil {
		return fmt.Errorf("projections: follower %q needs a unique name and a Handle", f.Name)
	}
	r.followers = append(r.followers, &follower{spec: f, state: FollowerStarting, since: time.Now()})
	r.e.metrics.followerRetries.WithLabelValues(f.Name)
	r.e.metrics.followerLag.WithLabelValues(f.Name)
	r.e.metrics.followerFollowing.WithLabelValues(f.Name).Set(0)
	return nil
}

// Run sets up the projections' tables (Setup) and runs them until ctx is
// done; the local followers run from the start, beside them. A projection
// that fails stops alone; the others go on. Run returns nil after ctx is
// cancelled, or the setup error.
func (r *Runner) Run(ctx context.Context) error {
	var followersDone sync.WaitGroup
	defer followersDone.Wait()
	for _, f := range r.followers {
		followersDone.Go(func() { r.runFollower(ctx, f) })
	}
	if len(r.followers) > 0 {
		followersDone.Go(func() { r.vouchLoop(ctx) })
		followersDone.Go(func() { r.statusLoop(ctx) })
	}
	if len(r.e.cfg.Projections) == 0 {
		// Followers only (`authledger worker`): no projection to run.
		<-ctx.Done()
		return nil
	}
	if err := r.setup(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	for _, p := range r.e.cfg.Projections {
		if err := dropStaleGenerations(ctx, r.e.pool, p); err != nil {
			r.e.logger.Warn("could not drop old read-model generations", "projection", p.Name(), "error", err)
		}
	}
	lagDone := make(chan struct{})
	lagCtx, cancelLag := context.WithCancel(ctx)
	go func() {
		defer close(lagDone)
		r.lagLoop(lagCtx)
	}()
	defer func() {
		cancelLag()
		<-lagDone
	}()

	var projections sync.WaitGroup
	for _, b := range r.bindings {
		// A projection that failed for good returns early; the others
		// run until ctx is done.
		projections.Go(func() { _ = b.supervise(ctx) })
	}
	close(r.running)
	projections.Wait()
	<-ctx.Done()
	// Record that nobody runs these projections any more, unless they failed.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for name, st := range r.States() {
		if st == StateRunning || st == StateRetrying {
			_ = setState(sctx, r.e.pool, name, StateStopped, nil)
		}
	}
	return nil
}

// setup runs Setup until it succeeds, whatever the error, forever: an
// outage during start-up must not leave the projections stopped behind a
// server that answers. Until it succeeds, Ready says so. It returns nil
// once set up, or quietly when ctx is done.
func (r *Runner) setup(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := Setup(ctx, r.e.pool, r.e.cfg.Projections...)
		switch {
		case err == nil:
			r.setUp.Store(true)
			return nil
		case ctx.Err() != nil:
			return nil
		}
		r.setupErr.Store(err.Error())
		level := slog.LevelWarn
		if !isTransient(err) {
			level = slog.LevelError
		}
		r.e.logger.Log(ctx, level, "projection setup failed; retrying", "error", err, "attempt", attempt)
		sleep(ctx, backoff(r.e.cfg.RetryBackoff, r.e.cfg.MaxBackoff, attempt))
	}
}

// Running is closed once Run has started the projections.
func (r *Runner) Running() <-chan struct{} { return r.running }

// setState records a projection's state in its checkpoint row first and
// in this process after, so that whoever sees the new state here (States,
// local waiters) also finds it in the row (a waiter reading the row saw a
// restarted projection as still failed).
func (r *Runner) setState(name, state string, f *failure) {
	r.mu.Lock()
	same := r.states[name].State == state && state != StateFailed
	r.mu.Unlock()
	if same {
		// Recorded already: a retry after another outage, a reload.
		return
	}
	if state != StateStandby {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := setState(ctx, r.e.pool, name, state, f); err != nil {
			r.e.logger.Warn("could not record projection state", "projection", name, "state", state, "error", err)
		}
		cancel()
	}
	r.mu.Lock()
	r.states[name] = localState{State: state, Fail: f}
	r.mu.Unlock()
	v := 0.0
	if state == StateFailed {
		v = 1
	}
	r.e.metrics.failed.WithLabelValues(name).Set(v)
	r.hub.setState(name, state)
}

// States is each projection's state in this process (StateStandby when
// another instance runs it).
func (r *Runner) States() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.states))
	for n, s := range r.states {
		out[n] = s.State
	}
	return out
}

// ErrNotReady is matched by Ready's error.
var ErrNotReady = errors.New("projections: not ready")

// Ready is the readiness check for /readyz: it fails while a projection of
// this runner is failed or retrying here, marked failed in the database by
// another instance, or behind the log by more than MaxLag, and while a
// local follower is not following or not vouched for within MaxLag; it
// names each.
func (r *Runner) Ready(ctx context.Context) error {
	errs := []error{r.followersReady()}
	if len(r.e.cfg.Projections) > 0 && !r.setUp.Load() {
		msg := "projections are not set up yet"
		if e, ok := r.setupErr.Load().(string); ok {
			msg += ": " + e
		}
		errs = append(errs, fmt.Errorf("%w: %s", ErrNotReady, msg))
	}
	r.mu.Lock()
	for name, s := range r.states {
		switch {
		case s.State == StateIdle:
			errs = append(errs, fmt.Errorf("%w: projection %s has not started", ErrNotReady, name))
		case s.State == StateFailed && s.Fail != nil:
			errs = append(errs, fmt.Errorf("%w: projection %s failed on event %s (%s): %v", ErrNotReady, name, s.Fail.EventID, s.Fail.EventType, s.Fail.Err))
		case s.State == StateRetrying && s.Fail != nil:
			errs = append(errs, fmt.Errorf("%w: projection %s is retrying: %v", ErrNotReady, name, s.Fail.Err))
		case r.lag[name] > r.e.cfg.MaxLag.Seconds():
			errs = append(errs, fmt.Errorf("%w: projection %s is %.1fs behind the log (bound %s)", ErrNotReady, name, r.lag[name], r.e.cfg.MaxLag))
		}
	}
	r.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	names := make([]string, 0, len(r.e.cfg.Projections))
	for _, p := range r.e.cfg.Projections {
		names = append(names, p.Name())
	}
	rows, err := r.e.pool.Query(ctx, `SELECT name, coalesce(failed_event_id::text, ''), coalesce(failed_event_type, ''), coalesce(last_error, '')
		FROM projection_checkpoints WHERE name = ANY($1) AND state = $2`, names, StateFailed)
	if err != nil {
		return fmt.Errorf("%w: read projection states: %v", ErrNotReady, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, id, typ, msg string
		if err := rows.Scan(&name, &id, &typ, &msg); err != nil {
			return fmt.Errorf("%w: %v", ErrNotReady, err)
		}
		errs = append(errs, fmt.Errorf("%w: projection %s failed on event %s (%s): %s", ErrNotReady, name, id, typ, msg))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	return errors.Join(errs...)
}

// Readiness is Ready in the shape of an httpapi readiness check
// (httpapi.Check{Name: "projections", Func: runner.Readiness}): the details
// are each projection's and local follower's state in this process.
func (r *Runner) Readiness(ctx context.Context) (any, error) {
	states := r.States()
	for _, f := range r.Followers() {
		states[f.Name] = f.State
	}
	return states, r.Ready(ctx)
}

// Hub is the runner's in-process broadcast of checkpoint advances (used by
// Waiter).
func (r *Runner) Hub() *Hub { return r.hub }

func (r *Runner) lagLoop(ctx context.Context) {
	t := time.NewTicker(r.e.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := Status(ctx, r.e.pool, r.e.store, r.e.cfg.Projections...)
		if err != nil {
			if ctx.Err() == nil {
				r.e.logger.Warn("could not measure projection lag", "error", err)
			}
			continue
		}
		r.mu.Lock()
		for _, s := range st {
			r.lag[s.Name] = s.LagSeconds
		}
		r.mu.Unlock()
		for _, s := range st {
			r.e.metrics.lagEvents.WithLabelValues(s.Name).Set(float64(s.LagEvents))
			r.e.metrics.lagSeconds.WithLabelValues(s.Name).Set(s.LagSeconds)
			r.e.metrics.position.WithLabelValues(s.Name).Set(float64(s.Position.Commit))
		}
	}
}

// Hub broadcasts checkpoint advances inside one process, so that a
// read-your-writes wait wakes up the moment the runner commits.
type Hub struct {
	mu    sync.Mutex
	pos   map[string]eventstore.Position
	state map[string]string
	ch    chan struct{}
}

func newHub() *Hub {
	return &Hub{pos: map[string]eventstore.Position{}, state: map[string]string{}, ch: make(chan struct{})}
}

func (h *Hub) advance(name string, p eventstore.Position) {
	h.mu.Lock()
	if p.Compare(h.pos[name]) > 0 {
		h.pos[name] = p
	}
	close(h.ch)
	h.ch = make(chan struct{})
	h.mu.Unlock()
}

func (h *Hub) setState(name, s string) {
	h.mu.Lock()
	h.state[name] = s
	close(h.ch)
	h.ch = make(chan struct{})
	h.mu.Unlock()
}

// runsAll reports whether this process runs every named projection.
func (h *Hub) runsAll(names []string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range names {
		if h.state[n] != StateRunning {
			return false
		}
	}
	return true
}

// snapshot returns the positions committed in-process and a channel closed
// at the next change.
func (h *Hub) snapshot(names []string) (map[string]eventstore.Position, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]eventstore.Position, len(names))
	for _, n := range names {
		if p, ok := h.pos[n]; ok {
			out[n] = p
		}
	}
	return out, h.ch
}
