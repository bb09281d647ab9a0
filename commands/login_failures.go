package commands

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
)

// MaxPendingLoginFailures bounds the refused logins being appended in the
// background at once; past it a refusal is appended before the answer,
// which slows a flood of wrong passwords rather than queue it.
const MaxPendingLoginFailures = 64

// committedKept is how long a failure is remembered here after its append
// committed: long enough for every load made before the commit to have
// been checked.
const committedKept = time.Minute

// loginFailures appends refused logins to their user streams off the
// response path (issue 18 item 11): a wrong password for a known account
// is answered at once, as an unknown address is, instead of after a
// durable commit that only known accounts make, which told them apart by
// a few milliseconds.
//
// Until a load of the user stream includes it, a failure is counted here
// too (User.LoginRetryAfterPending), so the next attempt through this
// instance is held exactly as before; another instance sees it a few
// milliseconds later, once it is in the stream. Whether a load includes a
// committed failure is told by its revision, never by comparing times
// (two failures can share one). A success waits for the user's pending
// appends before it clears the source's failures, so that the clearing
// follows them in the stream.
type loginFailures struct {
	users *Repository[*user.User]
	log   *slog.Logger
	slots chan struct{}
	now   func() time.Time

	// writers counts the writers running, for drain.
	writers sync.WaitGroup

	mu     sync.Mutex
	byUser map[uuid.UUID]*userFailures
}

type userFailures struct {
	entries []*pendingFailure
	// running is true while a writer appends the user's queued failures;
	// idle is closed when it stops (nothing queued any more).
	running bool
	idle    chan struct{}
}

type pendingFailure struct {
	e       user.LoginFailed
	attempt user.LoginAttempt
	policy  user.ThrottlePolicy
	meta    Meta
	// queued until a writer takes it; then placed (revision is the one
	// its event takes if the append being decided commits), then
	// committed or forgotten.
	queued    bool
	placed    bool
	committed bool
	revision  uint64
	at        time.Time
}

func newLoginFailures(users *Repository[*user.User], log *slog.Logger) *loginFailures {
	if log == nil {
		log = slog.Default()
	}
	return &loginFailures{users: users, log: log, slots: make(chan struct{}, MaxPendingLoginFailures), now: time.Now,
		byUser: map[uuid.UUID]*userFailures{}}
}

// pending returns the user's failures that a load of version events (the
// aggregate's Version) does not include.
func (f *loginFailures) pending(id uuid.UUID, version int) []user.LoginFailed {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.byUser[id]
	if u == nil {
		return nil
	}
	var out []user.LoginFailed
	for _, p := range u.entries {
		// Not placed yet: its append cannot have committed. Placed: the
		// load holds it exactly when its revision is below the load's
		// version (an append and a load race; the revision tells).
		if !p.placed || p.revision >= uint64(version) { //nolint:gosec // a version is never negative
			out = append(out, p.e)
		}
	}
	return out
}

// record queues a refusal of attempt a on user id and makes sure a writer
// appends it: one writer per user, so that the user's failures go to its
// stream in order and in few appends rather than racing each other
// (concurrent appends to one stream conflict and retry). The writer runs
// in the background when a slot is free, else before record returns.
func (f *loginFailures) record(ctx context.Context, id uuid.UUID, a user.LoginAttempt, now time.Time, p user.ThrottlePolicy, meta Meta) {
	pf := &pendingFailure{e: user.LoginFailed{UserID: id, FailedAt: now.UTC(), Source: a.Source, Device: a.Device, Method: a.Method},
		attempt: a, policy: p, meta: meta, queued: true}
	f.mu.Lock()
	u := f.byUser[id]
	if u == nil {
		u = &userFailures{}
		f.byUser[id] = u
	}
	u.entries = append(u.entries, pf)
	start := !u.running
	if start {
		u.running, u.idle = true, make(chan struct{})
	}
	f.mu.Unlock()
	if !start {
		return // the user's writer takes it
	}
	f.writers.Add(1)
	detached := context.WithoutCancel(ctx)
	select {
	case f.slots <- struct{}{}:
		go func() {
			defer func() { <-f.slots }()
			f.write(detached, id)
		}()
	default:
		f.write(detached, id)
	}
}

// write appends the user's queued failures until none is left.
func (f *loginFailures) write(ctx context.Context, id uuid.UUID) {
	defer f.writers.Done()
	for {
		f.mu.Lock()
		u := f.byUser[id]
		var batch []*pendingFailure
		for _, p := range u.entries {
			if p.queued {
				p.queued = false
				batch = append(batch, p)
			}
		}
		if len(batch) == 0 {
			u.running = false
			close(u.idle)
			now := f.now()
			u.entries = slices.DeleteFunc(u.entries, func(p *pendingFailure) bool { return p.committed && now.Sub(p.at) > committedKept })
			if len(u.entries) == 0 {
				delete(f.byUser, id)
			}
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		var recorded []*pendingFailure
		res, err := f.users.Update(ctx, user.StreamName(id), batch[0].meta, func(u *user.User) error {
			recorded = recorded[:0]
			base := u.Version() // the revision of the first event this append writes
			defer func() {
				f.mu.Lock()
				for i, p := range recorded {
					p.placed, p.revision = true, uint64(base+i) //nolint:gosec // a version is never negative
				}
				f.mu.Unlock()
			}()
			for _, p := range batch {
				// A failure the throttle would have refused by now (others
				// were recorded meanwhile) was checked already when it was
				// answered: it is not counted, as before.
				err := u.RecordLoginFailure(p.attempt, p.e.FailedAt, p.policy)
				if errors.Is(err, user.ErrThrottled) {
					continue
				}
				if err != nil {
					return err
				}
				recorded = append(recorded, p)
			}
			return nil
		})
		if err != nil {
			f.log.WarnContext(ctx, "login: could not record refused logins", slog.String("user_id", id.String()), slog.Int("failures", len(batch)), slog.String("error", err.Error()))
			recorded = nil
		}
		f.mu.Lock()
		now := f.now()
		for i, p := range recorded {
			// The batch's events take the revisions up to the last one.
			p.committed, p.revision, p.at = true, res.NextRevision-uint64(len(recorded)-1-i), now //nolint:gosec // i < len
		}
		u.entries = slices.DeleteFunc(u.entries, func(p *pendingFailure) bool { return !p.queued && !p.committed })
		f.mu.Unlock()
	}
}

// drain waits for every writer to finish (shutdown: before the store
// closes), or for ctx.
func (f *loginFailures) drain(ctx context.Context) {
	done := make(chan struct{})
	go func() { f.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// wait returns once the user's appends under way have ended (or ctx is
// done).
func (f *loginFailures) wait(ctx context.Context, id uuid.UUID) {
	f.mu.Lock()
	var idle chan struct{}
	if u := f.byUser[id]; u != nil && u.running {
		idle = u.idle
	}
	f.mu.Unlock()
	if idle == nil {
		return
	}
	select {
	case <-idle:
	case <-ctx.Done():
	}
}
