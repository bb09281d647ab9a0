// Package sessionlimit enforces the per-user cap on concurrent sessions
// (AUTHLEDGER_MAX_SESSIONS_PER_USER): after each login it revokes the
// user's oldest sessions beyond the cap, with reason limit_exceeded.
//
// It is a policy reacting to the log, not part of the login command: a
// login appends to its own session stream only (ADR 0002), and which other
// sessions a user holds is a question across streams. The policy reads the
// sessions read model once that model has reached the login's position, so
// the list it acts on includes the new session and every earlier one; the
// revocation itself is the ordinary command, which re-checks on each
// session's stream. The cap is therefore enforced within moments of a
// login, not atomically with it.
package sessionlimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/identity"
)

// Waiter waits until projections have passed a log position
// (projections/runtime.Waiter).
type Waiter interface {
	WaitFor(ctx context.Context, pos eventstore.Position, projections ...string) error
}

// Enforcer is the policy. Build it with its fields set and call Run.
type Enforcer struct {
	Store  eventstore.Store
	Pool   identity.Querier
	Waiter Waiter
	Revoke *commands.RevokeSessionHandler
	// Limit is the cap; Run returns at once when it is 0 (no cap).
	Limit  int
	Logger *slog.Logger
	// ReadModelWait bounds the wait for the sessions projection (default
	// 10s); past it the login is skipped, and the user's next login
	// enforces the cap again.
	ReadModelWait time.Duration
	// Now is the clock deciding which sessions have expired (time.Now).
	Now func() time.Time
}

// Run follows the log from its current head until ctx is done. Logins
// before the start were handled by the previous run (or are at the next
// login of the same user).
func (e *Enforcer) Run(ctx context.Context) error {
	if e.Limit <= 0 {
		return nil
	}
	if e.Store == nil || e.Pool == nil || e.Waiter == nil || e.Revoke == nil {
		return errors.New("sessionlimit: Store, Pool, Waiter and Revoke are required")
	}
	head, err := e.Store.Head(ctx)
	if err != nil {
		return fmt.Errorf("sessionlimit: %w", err)
	}
	return e.Store.Subscribe(ctx, eventstore.SubscribeOptions{
		After:  head,
		Filter: eventstore.Filter{EventTypes: []string{session.EventStarted}},
	}, func(ctx context.Context, ev eventstore.RecordedEvent) error {
		if err := e.enforce(ctx, ev); err != nil && ctx.Err() == nil {
			// One user's failure must not stop the policy for everyone.
			e.logger().Warn("session limit not enforced for a login", slog.String("event_id", ev.ID.String()), slog.String("error", err.Error()))
		}
		return nil
	})
}

// enforce handles one login.
func (e *Enforcer) enforce(ctx context.Context, ev eventstore.RecordedEvent) error {
	var started session.Started
	if err := json.Unmarshal(ev.Data, &started); err != nil {
		return fmt.Errorf("decode %s: %w", ev.Type, err)
	}
	wait := e.ReadModelWait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	err := e.Waiter.WaitFor(wctx, ev.Position, identity.SessionsName)
	cancel()
	if err != nil {
		return fmt.Errorf("wait for the sessions read model: %w", err)
	}
	now := time.Now()
	if e.Now != nil {
		now = e.Now()
	}
	// All of the user's active sessions: the oldest are the ones to go,
	// and a user's active sessions are few.
	active, _, err := identity.ListActiveSessions(ctx, e.Pool, started.UserID, now, 1, 10_000)
	if err != nil {
		return err
	}
	// All of them, the new one included: a login handled late (the read
	// model already has newer sessions) must not count itself as the
	// newest. Keeping the newest Limit is the same decision whichever
	// login of the user it is made for.
	all := make([]session.Summary, 0, len(active))
	for _, s := range active {
		all = append(all, session.Summary{ID: s.SessionID, StartedAt: s.StartedAt})
	}
	meta := commands.Meta{
		CorrelationID: ev.ID.String(),
		CausationID:   ev.ID.String(),
		Actor:         events.Actor{Kind: events.ActorSystem},
	}
	var errs []error
	// OldestBeyondLimit makes room for one more; here the one more is
	// already counted.
	for _, id := range session.OldestBeyondLimit(all, e.Limit+1) {
		_, err := e.Revoke.Handle(ctx, commands.RevokeSession{SessionID: id, UserID: started.UserID, Reason: session.ReasonLimitExceeded, Meta: meta})
		if err != nil && !errors.Is(err, commands.ErrSessionNotFound) {
			errs = append(errs, fmt.Errorf("revoke %s: %w", id, err))
			continue
		}
		e.logger().Info("session revoked: concurrent session limit", slog.String("user_id", started.UserID.String()), slog.String("session_id", id.String()), slog.Int("limit", e.Limit))
	}
	return errors.Join(errs...)
}

func (e *Enforcer) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}
