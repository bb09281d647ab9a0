// Package sessionclaims is the policy that keeps each open session's claims
// (the email, display name and roles its access tokens carry) equal to its
// user's, so that a refresh can issue an access token from its session
// stream alone (ADR 0006).
//
// A login copies the user's claims into session.started. Afterwards the
// user can change (a role granted or revoked, a new display name), and a
// login can read the user just before a change that commits ahead of the
// session. The policy answers both:
//
//   - on a change to a user, it syncs every open session of the user;
//   - on a login, it syncs the new session;
//   - on a password change made from a session (POST /v1/me/password),
//     it ends every other open session of the user (a reset ends them
//     all with a cutoff instead, in its command).
//
// A sync reads the user stream as it is now and appends
// session.claims_updated to each session whose claims differ
// (commands.SyncSessionClaimsHandler). Whichever order the log gives a
// change and a racing login, the later of the two finds the change.
//
// Which sessions are open is the policy's own state: a table written in the
// same transaction as its checkpoint, by the projection projector. The policy
// is therefore durable: it resumes from its checkpoint after a restart and
// misses no change, and one instance runs it at a time. Its appends are
// outside that transaction, so an event may be handled twice after a
// failure; a second sync appends nothing.
package sessionclaims

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// Name is the policy's checkpoint name.
const Name = "session_claims"

// openSessions is the base name of the policy's table: the sessions it
// keeps in sync, with their user and absolute end.
const openSessions = "session_claims_open"

// userChanges are the user events that change a session's claims (roles,
// display name, the address and whether it is verified).
var userChanges = []string{user.EventRoleGranted, user.EventRoleRevoked, user.EventDisplayNameChanged,
	user.EventEmailVerified, user.EventEmailChanged}

// New returns the policy, run like a projection (projector.Runner). now is
// the clock deciding which sessions have ended (nil: time.Now). revoke
// ends the other sessions after a password change (nil: it does not).
func New(sync *commands.SyncSessionClaimsHandler, revoke *commands.RevokeSessionHandler, now func() time.Time) projector.Projection {
	reg := events.NewRegistry()
	if err := errors.Join(session.RegisterEvents(reg), user.RegisterEvents(reg)); err != nil {
		// Constant tables: a clash is a programming error every test hits.
		panic(err)
	}
	return &policy{sync: sync, revoke: revoke, now: now, reg: reg}
}

type policy struct {
	sync   *commands.SyncSessionClaimsHandler
	revoke *commands.RevokeSessionHandler
	now    func() time.Time
	// reg decodes what the policy reads, upcasting old versions.
	reg *events.Registry
}

// Name implements projector.Projection.
func (*policy) Name() string { return Name }

// Filter implements projector.Projection.
func (*policy) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: append([]string{session.EventStarted, session.EventRevoked, user.EventPasswordChanged}, userChanges...)}
}

// Tables implements projector.Projection.
func (*policy) Tables() []string { return []string{openSessions} }

// CreateTables implements projector.Projection.
func (*policy) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	_, err := tx.Exec(ctx, fmt.Sprintf(`
CREATE TABLE %[1]s (
	session_id uuid PRIMARY KEY,
	user_id    uuid NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX %[2]s ON %[1]s (user_id);`, t.Ident(openSessions), pgx.Identifier{t.Name(openSessions) + "_user"}.Sanitize()))
	return err
}

// Begin implements projector.Projection. The batch writes its table only at
// Flush: a sync reads and appends to the event store, and a transaction
// that has written holds back every subscriber of the PostgreSQL store
// until it ends (ARCHITECTURE.md, Event store).
func (p *policy) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	now := time.Now()
	if p.now != nil {
		now = p.now()
	}
	return &batch{p: p, tx: tx, table: t.Ident(openSessions), now: now,
		started: map[uuid.UUID]openSession{}, revoked: map[uuid.UUID]bool{}, users: map[uuid.UUID]bool{}}, nil
}

type openSession struct {
	userID    uuid.UUID
	expiresAt time.Time
}

// batch is the policy's work in one transaction.
type batch struct {
	p     *policy
	tx    pgx.Tx
	table string
	now   time.Time
	// started: sessions to insert; revoked: sessions to delete; users:
	// users whose ended sessions to delete.
	started map[uuid.UUID]openSession
	revoked map[uuid.UUID]bool
	users   map[uuid.UUID]bool
}

func (b *batch) Apply(ctx context.Context, ev eventstore.RecordedEvent) error {
	decoded, err := b.p.reg.Decode(ev.Type, ev.Data)
	if err != nil {
		return fmt.Errorf("sessionclaims: decode %s: %w", ev.Type, err)
	}
	switch e := decoded.(type) {
	case session.Started:
		// The user's sessions that have ended go at each login, which
		// keeps the table to about the open sessions.
		b.users[e.UserID] = true
		if !e.ExpiresAt.After(b.now) {
			return nil
		}
		b.started[e.SessionID] = openSession{userID: e.UserID, expiresAt: e.ExpiresAt}
		if e.Claims == nil {
			// Started before sessions carried claims: its refreshes
			// read the user stream.
			return nil
		}
		return b.syncSessions(ctx, ev, e.UserID, []uuid.UUID{e.SessionID})
	case session.Revoked:
		delete(b.started, e.SessionID)
		b.revoked[e.SessionID] = true
		return nil
	case user.PasswordChanged:
		if e.KeepSession == nil || b.p.revoke == nil {
			return nil // a reset ended every session by a cutoff; a rehash is another event
		}
		return b.endOtherSessions(ctx, ev, e.UserID, *e.KeepSession)
	default: // a change to a user
		userID, err := uuid.Parse(strings.TrimPrefix(ev.Stream, user.StreamPrefix))
		if err != nil {
			return fmt.Errorf("sessionclaims: %s on stream %q: %w", ev.Type, ev.Stream, err)
		}
		ids, err := b.openSessionsOf(ctx, userID)
		if err != nil {
			return err
		}
		return b.syncSessions(ctx, ev, userID, ids)
	}
}

// openSessionsOf lists userID's sessions not yet ended, as of the events
// applied so far: the table's, and this batch's.
func (b *batch) openSessionsOf(ctx context.Context, userID uuid.UUID) ([]uuid.UUID, error) {
	rows, err := b.tx.Query(ctx, "SELECT session_id FROM "+b.table+" WHERE user_id = $1 AND expires_at > $2", userID, b.now)
	if err != nil {
		return nil, err
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, err
	}
	var ids []uuid.UUID
	for _, id := range stored {
		if !b.revoked[id] {
			ids = append(ids, id)
		}
	}
	for id, s := range b.started {
		if s.userID == userID && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return ids, nil
}

func (b *batch) Flush(ctx context.Context) error {
	if len(b.users) > 0 {
		if _, err := b.tx.Exec(ctx, "DELETE FROM "+b.table+" WHERE user_id = ANY($1) AND expires_at <= $2", slices.Collect(maps.Keys(b.users)), b.now); err != nil {
			return err
		}
	}
	if len(b.revoked) > 0 {
		if _, err := b.tx.Exec(ctx, "DELETE FROM "+b.table+" WHERE session_id = ANY($1)", slices.Collect(maps.Keys(b.revoked))); err != nil {
			return err
		}
	}
	if len(b.started) == 0 {
		return nil
	}
	var ids, users []uuid.UUID
	var ends []time.Time
	for id, s := range b.started {
		ids, users, ends = append(ids, id), append(users, s.userID), append(ends, s.expiresAt)
	}
	_, err := b.tx.Exec(ctx, "INSERT INTO "+b.table+` (session_id, user_id, expires_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) ON CONFLICT (session_id) DO NOTHING`, ids, users, ends)
	return err
}

// endOtherSessions revokes every open session of userID but keep. A
// session revoked already appends nothing, so a replay is harmless.
func (b *batch) endOtherSessions(ctx context.Context, ev eventstore.RecordedEvent, userID, keep uuid.UUID) error {
	ids, err := b.openSessionsOf(ctx, userID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id == keep {
			continue
		}
		_, err := b.p.revoke.Handle(ctx, commands.RevokeSession{SessionID: id, UserID: userID, Reason: session.ReasonPasswordChanged,
			Meta: commands.Meta{CorrelationID: ev.ID.String(), CausationID: ev.ID.String(), Actor: events.Actor{Kind: events.ActorSystem}}})
		if err != nil && !errors.Is(err, commands.ErrSessionNotFound) {
			return fmt.Errorf("sessionclaims: end session %s after %s: %w", id, ev.ID, err)
		}
		delete(b.started, id)
		b.revoked[id] = true
	}
	return nil
}

func (b *batch) syncSessions(ctx context.Context, ev eventstore.RecordedEvent, userID uuid.UUID, ids []uuid.UUID) error {
	_, err := b.p.sync.Handle(ctx, commands.SyncSessionClaims{UserID: userID, Sessions: ids, Meta: commands.Meta{
		CorrelationID: ev.ID.String(),
		CausationID:   ev.ID.String(),
		Actor:         events.Actor{Kind: events.ActorSystem},
	}})
	if err != nil {
		return fmt.Errorf("sessionclaims: after %s %s: %w", ev.Type, ev.ID, err)
	}
	return nil
}
