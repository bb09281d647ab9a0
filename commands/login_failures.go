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

	mu     sync.Mutex
	byUser map[uuid.UUID]*userFailures
}

type userFailures struct {
	entries []*pendingFailure
	// inflight counts the appends not ended; idle is closed when it
	// falls to zero.
	inflight int
	idle     chan struct{}
}

type pendingFailure struct {
	e         user.LoginFailed
	committed bool
	revision  uint64 // of the appended event, once committed
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
		if !p.committed || p.revision >= uint64(version) { //nolint:gosec // a version is never negative
			out = append(out, p.e)
		}
	}
	return out
}

// record appends a refusal of attempt a on user id, in the background
// when a slot is free.
func (f *loginFailures) record(ctx context.Context, id uuid.UUID, a user.LoginAttempt, now time.Time, p user.ThrottlePolicy, meta Meta) {
	pf := &pendingFailure{e: user.LoginFailed{UserID: id, FailedAt: now.UTC(), Source: a.Source, Device: a.Device, Method: a.Method}}
	f.mu.Lock()
	u := f.byUser[id]
	if u == nil {
		u = &userFailures{}
		f.byUser[id] = u
	}
	if u.inflight == 0 {
		u.idle = make(chan struct{})
	}
	u.inflight++
	u.entries = append(u.entries, pf)
	f.mu.Unlock()
	appendIt := func(ctx context.Context) {
		res, err := f.users.Update(ctx, user.StreamName(id), meta, func(u *user.User) error {
			return u.RecordLoginFailure(a, now, p)
		})
		// A concurrent failure may have throttled the source meanwhile:
		// this attempt was checked already; its failure is then not
		// counted, as before.
		if err != nil && !errors.Is(err, user.ErrThrottled) {
			f.log.WarnContext(ctx, "login: could not record a refused login", slog.String("user_id", id.String()), slog.String("error", err.Error()))
		}
		f.done(id, pf, err == nil && !res.Position.IsZero(), res.NextRevision)
	}
	detached := context.WithoutCancel(ctx)
	select {
	case f.slots <- struct{}{}:
		go func() {
			defer func() { <-f.slots }()
			appendIt(detached)
		}()
	default:
		appendIt(detached)
	}
}

// done ends pf's append: a committed failure is kept (for loads made
// before its commit) until committedKept has passed; one that was not
// appended is forgotten.
func (f *loginFailures) done(id uuid.UUID, pf *pendingFailure, committed bool, revision uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.byUser[id]
	if u == nil {
		return
	}
	now := f.now()
	if committed {
		pf.committed, pf.revision, pf.at = true, revision, now
	} else {
		u.entries = slices.DeleteFunc(u.entries, func(p *pendingFailure) bool { return p == pf })
	}
	u.entries = slices.DeleteFunc(u.entries, func(p *pendingFailure) bool { return p.committed && now.Sub(p.at) > committedKept })
	u.inflight--
	if u.inflight == 0 {
		close(u.idle)
		if len(u.entries) == 0 {
			delete(f.byUser, id)
		}
	}
}

// wait returns once the user's appends under way have ended (or ctx is
// done).
func (f *loginFailures) wait(ctx context.Context, id uuid.UUID) {
	f.mu.Lock()
	var idle chan struct{}
	if u := f.byUser[id]; u != nil && u.inflight > 0 {
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
