package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
)

// Follower states (FollowerStatus.State).
const (
	// FollowerStarting: the follower has not subscribed yet (its start
	// position is being read).
	FollowerStarting = "starting"
	// FollowerFollowing: its subscription runs.
	FollowerFollowing = "following"
	// FollowerRetrying: its subscription ended with an error, or its
	// handler refused an event; it resumes from its position after a
	// backoff.
	FollowerRetrying = "retrying"
)

// followerMaxBackoff caps a local follower's retry delay: resuming is one
// subscription, and the revocation feed's readiness waits on it.
const followerMaxBackoff = time.Second

// Follower is a side effect of the log that every process runs for itself
// (the revocation set of the token check, the worker's wake-ups): its
// position lives in memory, so a restarted process starts it again from
// Start. A Runner runs it beside the projections; whatever ends its
// subscription (an outage of any length, a refused event), it resumes from
// its position with backoff, forever, and logs each retry. It is never
// skipped past an event: an event Handle refuses is delivered again.
//
// The Runner also vouches for it: VouchedAt is the latest time before
// which every event of its filter committed had been handled.
type Follower struct {
	// Name identifies the follower in readiness, metrics and status; it
	// must differ from every projection's name.
	Name string
	// Filter selects the events Handle receives.
	Filter eventstore.Filter
	// Start returns the position to follow after when the process starts;
	// nil means the start of the log.
	Start func(ctx context.Context, store eventstore.Store) (eventstore.Position, error)
	// Handle receives each event once per successful delivery. An error
	// ends the subscription; the event is delivered again after a backoff.
	Handle eventstore.Handler
}

// FollowerStatus is one local follower's state in this process.
type FollowerStatus struct {
	Name     string
	State    string
	Position eventstore.Position
	// VouchedAt: every event of the follower's filter committed before it
	// had been handled (zero until the first vouch).
	VouchedAt time.Time
	// LagSeconds is how long ago VouchedAt was (since the runner started,
	// before the first vouch).
	LagSeconds float64
	Retries    int
	LastError  string
	// Since is when State was entered.
	Since time.Time
}

// follower is a Follower's state in the runner.
type follower struct {
	spec Follower

	mu        sync.Mutex
	state     string
	since     time.Time
	started   bool
	pos       eventstore.Position
	vouchedAt time.Time
	retries   int
	lastErr   string
}

func (f *follower) position() (eventstore.Position, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos, f.started
}

func (f *follower) advance(p eventstore.Position) {
	f.mu.Lock()
	if p.Compare(f.pos) > 0 {
		f.pos = p
	}
	f.mu.Unlock()
}

func (f *follower) vouch(at time.Time) {
	f.mu.Lock()
	if at.After(f.vouchedAt) {
		f.vouchedAt = at
	}
	f.mu.Unlock()
}

func (f *follower) setState(state string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != state {
		f.state, f.since = state, time.Now()
	}
	if err != nil {
		f.retries++
		f.lastErr = err.Error()
	}
}

func (f *follower) status(now, runnerStart time.Time) FollowerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	ref := f.vouchedAt
	if ref.IsZero() {
		ref = runnerStart
	}
	return FollowerStatus{
		Name: f.spec.Name, State: f.state, Position: f.pos, VouchedAt: f.vouchedAt,
		LagSeconds: max(0, now.Sub(ref).Seconds()), Retries: f.retries, LastError: f.lastErr, Since: f.since,
	}
}

// runFollower follows the log for f until ctx is done.
func (r *Runner) runFollower(ctx context.Context, f *follower) {
	log := r.e.logger.With("follower", f.spec.Name)
	attempt := 0
	retry := func(what string, err error) {
		attempt++
		f.setState(FollowerRetrying, err)
		r.e.metrics.followerRetries.WithLabelValues(f.spec.Name).Inc()
		d := backoff(r.e.cfg.RetryBackoff, followerMaxBackoff, attempt)
		pos, _ := f.position()
		log.Warn(what+"; resuming from its position", "position", pos.String(), "retry", attempt, "backoff", d, "error", err)
		sleep(ctx, d)
	}
	for ctx.Err() == nil {
		if _, started := f.position(); !started {
			var start eventstore.Position
			if f.spec.Start != nil {
				var err error
				if start, err = f.spec.Start(ctx, r.e.store); err != nil {
					if ctx.Err() == nil {
						retry("log follower could not read its start position", err)
					}
					continue
				}
			}
			f.mu.Lock()
			f.pos, f.started = start, true
			f.mu.Unlock()
		}
		from, _ := f.position()
		f.setState(FollowerFollowing, nil)
		err := r.e.store.Subscribe(ctx, eventstore.SubscribeOptions{
			After:  from,
			Filter: f.spec.Filter,
			OnCheckpoint: func(_ context.Context, p eventstore.Position) error {
				f.advance(p)
				return nil
			},
		}, func(ctx context.Context, ev eventstore.RecordedEvent) (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("handler panicked: %v", p)
				}
			}()
			if err := f.spec.Handle(ctx, ev); err != nil {
				return &applyFailure{ev: ev, err: err}
			}
			f.advance(ev.Position)
			attempt = 0
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("subscription ended")
		}
		var af *applyFailure
		if errors.As(err, &af) {
			retry("log follower cannot handle an event", err)
		} else {
			retry("log follower interrupted", err)
		}
	}
}

// vouchLoop vouches for the local followers every probe interval: it
// reads the log's head at time t; a follower at or past the head, or with
// no event of its filter between its position and the head, has handled
// every such event committed before t.
func (r *Runner) vouchLoop(ctx context.Context) {
	t := time.NewTicker(r.e.cfg.VouchInterval)
	defer t.Stop()
	for {
		r.vouch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Runner) vouch(ctx context.Context) {
	at := time.Now()
	head, err := r.e.store.Head(ctx)
	if err != nil {
		return
	}
	for _, f := range r.followers {
		pos, started := f.position()
		if !started {
			continue
		}
		if pos.Compare(head) < 0 {
			evs, err := r.e.store.ReadAll(ctx, eventstore.ReadAllOptions{After: pos, Limit: 1, Filter: f.spec.Filter})
			if err != nil || (len(evs) == 1 && evs[0].Position.Compare(head) <= 0) {
				continue // an event before the head waits for the follower
			}
		}
		f.vouch(at)
	}
	now := time.Now()
	for _, f := range r.followers {
		s := f.status(now, r.started)
		r.e.metrics.followerLag.WithLabelValues(s.Name).Set(s.LagSeconds)
		following := 0.0
		if s.State == FollowerFollowing {
			following = 1
		}
		r.e.metrics.followerFollowing.WithLabelValues(s.Name).Set(following)
	}
}

// VouchedAt returns the time before which every event of the named local
// follower's filter committed had been handled, and false when the runner
// has no such follower. The zero time means never (yet).
func (r *Runner) VouchedAt(name string) (time.Time, bool) {
	for _, f := range r.followers {
		if f.spec.Name == name {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.vouchedAt, true
		}
	}
	return time.Time{}, false
}

// Followers reports each local follower's state in this process.
func (r *Runner) Followers() []FollowerStatus {
	now := time.Now()
	out := make([]FollowerStatus, 0, len(r.followers))
	for _, f := range r.followers {
		out = append(out, f.status(now, r.started))
	}
	return out
}

// followersReady fails while a local follower is not following, or was
// last vouched for longer ago than MaxLag, naming each.
func (r *Runner) followersReady() error {
	var errs []error
	for _, s := range r.Followers() {
		switch {
		case s.State != FollowerFollowing:
			msg := fmt.Sprintf("%s: follower %s is %s", ErrNotReady, s.Name, s.State)
			if s.LastError != "" {
				msg += ": " + s.LastError
			}
			errs = append(errs, errors.New(msg))
		case s.LagSeconds > r.e.cfg.MaxLag.Seconds():
			errs = append(errs, fmt.Errorf("%w: follower %s is %.1fs behind the log (bound %s)", ErrNotReady, s.Name, s.LagSeconds, r.e.cfg.MaxLag))
		}
	}
	return errors.Join(errs...)
}

// statusLoop records the local followers' states in log_followers, so that
// `authledger projections status` (another process) shows them. Best
// effort: while the database is down the rows just age.
func (r *Runner) statusLoop(ctx context.Context) {
	if len(r.followers) == 0 {
		return
	}
	t := time.NewTicker(r.e.cfg.StatusInterval)
	defer t.Stop()
	defer func() {
		// This process stops following: its rows would only age.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = r.e.pool.Exec(dctx, "DELETE FROM log_followers WHERE instance = $1", r.e.cfg.Instance)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := recordFollowers(ctx, r.e.pool, r.e.cfg.Instance, r.Followers()); err != nil && ctx.Err() == nil {
			r.e.logger.Debug("could not record the log followers' states", slog.String("error", err.Error()))
		}
	}
}

// LogFollowerRow is one local follower as a process last recorded it
// (log_followers).
type LogFollowerRow struct {
	Instance string
	FollowerStatus
	UpdatedAt time.Time
}

func recordFollowers(ctx context.Context, pool *pgxpool.Pool, instance string, st []FollowerStatus) error {
	for _, s := range st {
		var vouched *time.Time
		if !s.VouchedAt.IsZero() {
			vouched = &s.VouchedAt
		}
		var lastErr *string
		if s.LastError != "" {
			lastErr = &s.LastError
		}
		if _, err := pool.Exec(ctx, `INSERT INTO log_followers (instance, name, state, position, vouched_at, retries, last_error, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, now())
			ON CONFLICT (instance, name) DO UPDATE SET state = excluded.state, position = excluded.position,
				vouched_at = excluded.vouched_at, retries = excluded.retries, last_error = excluded.last_error, updated_at = now()`,
			instance, s.Name, s.State, s.Position.String(), vouched, s.Retries, lastErr); err != nil {
			return err
		}
	}
	return nil
}

// LogFollowers lists the local followers every process recorded within
// maxAge (all of them when maxAge is 0), newest first, with their lag as
// of their last record plus the time since.
func LogFollowers(ctx context.Context, pool *pgxpool.Pool, maxAge time.Duration) ([]LogFollowerRow, error) {
	rows, err := pool.Query(ctx, `SELECT instance, name, state, position, vouched_at, retries, coalesce(last_error, ''), updated_at, now()
		FROM log_followers WHERE $1::interval IS NULL OR updated_at > now() - $1::interval ORDER BY name, updated_at DESC`, nullInterval(maxAge))
	if err != nil {
		return nil, fmt.Errorf("projections: log followers: %w", err)
	}
	defer rows.Close()
	var out []LogFollowerRow
	for rows.Next() {
		var r LogFollowerRow
		var pos string
		var vouched *time.Time
		var now time.Time
		if err := rows.Scan(&r.Instance, &r.Name, &r.State, &pos, &vouched, &r.Retries, &r.LastError, &r.UpdatedAt, &now); err != nil {
			return nil, fmt.Errorf("projections: log followers: %w", err)
		}
		if r.Position, err = eventstore.ParsePosition(pos); err != nil {
			return nil, fmt.Errorf("projections: log follower %s: %w", r.Name, err)
		}
		if vouched != nil {
			r.VouchedAt = *vouched
			r.LagSeconds = max(0, now.Sub(*vouched).Seconds())
		} else {
			r.LagSeconds = -1
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func nullInterval(d time.Duration) *time.Duration {
	if d <= 0 {
		return nil
	}
	return &d
}
