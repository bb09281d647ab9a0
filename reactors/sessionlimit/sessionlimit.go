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
//
// The policy runs under the projection runtime like a read model
// (projector.Projection, with no table of its own): it resumes from its
// checkpoint after a restart or an outage of any length, one instance runs
// it at a time, and `projections status` shows it. Its revocations are
// outside the checkpoint's transaction, so a login may be handled twice
// after a failure; the second pass finds nothing beyond the cap.
package sessionlimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/userviews"
)

// Name is the policy's checkpoint name.
const Name = "session_limit"

// Waiter waits until projections have passed a log position
// (projections/projector.Waiter).
type Waiter interface {
	WaitFor(ctx context.Context, pos eventstore.Position, projections ...string) error
}

// Config is what the policy needs. Every field but ReadModelWait, Now and
// Logger is required.
type Config struct {
	// Pool reads the sessions read model.
	Pool userviews.Querier
	// Waiter waits for the sessions read model to include a login.
	Waiter Waiter
	// Revoke is the command that ends a session.
	Revoke *commands.RevokeSessionHandler
	// Registry decodes session.started.v1 (session.RegisterEvents).
	Registry *events.Registry
	// Limit is the cap (at least 1).
	Limit int
	// ReadModelWait bounds one wait for the sessions projection (default
	// 10s); past it the login is tried again later (a stopped sessions
	// projection skips it: the user's next login enforces the cap again).
	ReadModelWait time.Duration
	// Now is the clock deciding which sessions have expired (time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Filter selects the logins.
var Filter = eventstore.Filter{EventTypes: []string{session.EventStarted}}

// New returns the policy, run like a projection (projector.Runner). An
// outage is retried, forever; any other failure for one login is logged
// and the login passed over, so that one user's problem cannot stop the
// policy for everyone (the user's next login enforces the cap again).
func New(cfg Config) (projector.Projection, error) {
	var errs []error
	if cfg.Pool == nil || cfg.Waiter == nil || cfg.Revoke == nil || cfg.Registry == nil {
		errs = append(errs, errors.New("sessionlimit: Pool, Waiter, Revoke and Registry are required"))
	}
	if cfg.Limit < 1 {
		errs = append(errs, fmt.Errorf("sessionlimit: Limit must be at least 1, got %d", cfg.Limit))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.ReadModelWait <= 0 {
		cfg.ReadModelWait = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &policy{cfg: cfg}
	return projector.NewSideEffect(projector.SideEffect{Name: Name, Filter: Filter, Apply: p.enforce, Logger: cfg.Logger})
}

type policy struct{ cfg Config }

// enforce handles one login.
func (p *policy) enforce(ctx context.Context, ev eventstore.RecordedEvent) error {
	decoded, err := p.cfg.Registry.Decode(ev.Type, ev.Data)
	if err != nil {
		return fmt.Errorf("decode %s: %w", ev.Type, err)
	}
	started, ok := decoded.(session.Started)
	if !ok {
		return fmt.Errorf("%s decoded as %T", ev.Type, decoded)
	}
	now := p.cfg.Now()
	if !started.ExpiresAt.After(now) {
		// Over already (a replay of old logins): it holds no place.
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, p.cfg.ReadModelWait)
	err = p.cfg.Waiter.WaitFor(wctx, ev.Position, userviews.SessionsName)
	cancel()
	if err != nil {
		// A timeout is retried (the read model is catching up after an
		// outage); a failed sessions projection skips the login.
		return fmt.Errorf("wait for the sessions read model: %w", err)
	}
	// All of the user's active sessions: the oldest are the ones to go,
	// and a user's active sessions are few.
	active, _, err := userviews.ListActiveSessions(ctx, p.cfg.Pool, started.UserID, now, 1, 10_000)
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
	for _, id := range session.OldestBeyondLimit(all, p.cfg.Limit+1) {
		_, err := p.cfg.Revoke.Handle(ctx, commands.RevokeSession{SessionID: id, UserID: started.UserID, Reason: session.ReasonLimitExceeded, Meta: meta})
		if err != nil && !errors.Is(err, commands.ErrSessionNotFound) {
			errs = append(errs, fmt.Errorf("revoke %s: %w", id, err))
			continue
		}
		p.cfg.Logger.Info("session revoked: concurrent session limit", slog.String("user_id", started.UserID.String()), slog.String("session_id", id.String()), slog.Int("limit", p.cfg.Limit))
	}
	return errors.Join(errs...)
}
