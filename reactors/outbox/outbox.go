// Package outbox is the outgoing-message reactor: the events that call
// for a message to a user (a verification or reset link, a changed
// password, a registration of a taken address) become rows of an outbox
// table, and a deliverer sends them, at least once, with retries and a
// dead-letter state.
//
// Two halves, so that a slow or broken mail server holds nothing back:
//
//   - The policy (New) is run by the projection runner like a read model:
//     it inserts one row per event into outbox_messages in the same
//     transaction as its checkpoint, keyed by the event id. The table is
//     the record of which events have a message: a redelivered event
//     inserts nothing (ON CONFLICT DO NOTHING), so each event is mailed
//     once however often the log is replayed to the policy. It shows in
//     `projections status` as the policy "outbox".
//   - The deliverer (Deliverer.Run, in every serve process) leases due
//     rows in one short statement (no transaction is held while a mail is
//     sent: that would hold back every subscriber of the log), sends,
//     and marks each row sent, or due again after a backoff, or dead
//     after MaxAttempts (or at once for a permanent refusal). A process
//     that dies mid-send leaves a lease that runs out; the row is sent
//     again (at least once). Dead rows stay in the table and in
//     `projections status` until an operator requeues them (Requeue,
//     `authledger projections requeue`).
//
// No token is in the log or the table: the deliverer derives it from the
// event's token id (auth/mailtoken) when it renders the mail.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// Name is the policy's checkpoint name (renaming it would insert a row
// for every recent event again).
const Name = "outbox"

// Table is the outbox's base table (a view over the current generation).
const Table = "outbox_messages"

// Message kinds: the mail template each row renders.
const (
	KindVerifyEmail           = "verify_email"
	KindPasswordReset         = "password_reset"
	KindPasswordChanged       = "password_changed"
	KindRegistrationAttempted = "registration_attempted"
	// KindEmailChanged tells the old address that the account moved.
	KindEmailChanged = "email_changed"
	// KindMFACode mails a second factor's code (its id in token_id).
	KindMFACode = "mfa_code"
	// KindMFASMS texts a second factor's code; the row's email column
	// holds the number (the recipient).
	KindMFASMS = "mfa_sms"
)

// Row states.
const (
	StatePending = "pending"
	StateSent    = "sent"
	StateDead    = "dead"
)

// DefaultMaxAge is how old an event may be when the policy first sees it
// and still get a message: on a log that predates the outbox (or after a
// long outage of it), older events are past any use (their links have
// expired) and are not mailed.
const DefaultMaxAge = 24 * time.Hour

// Filter selects the events that make messages.
var Filter = eventstore.Filter{EventTypes: []string{user.EventEmailVerificationRequested, user.EventPasswordResetRequested,
	user.EventPasswordChanged, user.EventRegistrationAttempted, user.EventEmailChanged, mfa.EventCodeSent}}

// New returns the policy. now is the clock judging an event's age (nil:
// time.Now); maxAge 0 means DefaultMaxAge.
func New(now func() time.Time, maxAge time.Duration) projector.Projection {
	reg := events.NewRegistry()
	if err := errors.Join(user.RegisterEvents(reg), mfa.RegisterEvents(reg)); err != nil {
		panic(err) // constant tables: a clash is a programming error every test hits
	}
	if now == nil {
		now = time.Now
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	return &policy{reg: reg, now: now, maxAge: maxAge}
}

type policy struct {
	reg    *events.Registry
	now    func() time.Time
	maxAge time.Duration
}

func (*policy) Name() string              { return Name }
func (*policy) Filter() eventstore.Filter { return Filter }
func (*policy) Tables() []string          { return []string{Table} }

func (*policy) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	_, err := tx.Exec(ctx, fmt.Sprintf(`
CREATE TABLE %[1]s (
	event_id        uuid        PRIMARY KEY,
	event_type      text        NOT NULL,
	kind            text        NOT NULL,
	user_id         uuid        NOT NULL,
	token_id        uuid,
	email           text,
	reason          text,
	expires_at      timestamptz,
	created_at      timestamptz NOT NULL,
	state           text        NOT NULL DEFAULT 'pending',
	attempts        integer     NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL,
	lease_until     timestamptz,
	last_error      text,
	sent_at         timestamptz
);
CREATE INDEX %[2]s ON %[1]s (next_attempt_at) WHERE state = 'pending';`,
		t.Ident(Table), pgx.Identifier{t.Name(Table) + "_due"}.Sanitize()))
	return err
}

func (p *policy) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	return &batch{p: p, tx: tx, table: t.Ident(Table)}, nil
}

type batch struct {
	p     *policy
	tx    pgx.Tx
	table string
}

// row is one message to insert.
type row struct {
	kind    string
	userID  uuid.UUID
	tokenID *uuid.UUID
	email   *string
	reason  *string
	expires *time.Time
	at      time.Time
}

func (b *batch) Apply(ctx context.Context, ev eventstore.RecordedEvent) error {
	decoded, err := b.p.reg.Decode(ev.Type, ev.Data)
	if err != nil {
		return fmt.Errorf("outbox: decode %s: %w", ev.Type, err)
	}
	var r row
	switch e := decoded.(type) {
	case user.EmailVerificationRequested:
		r = row{kind: KindVerifyEmail, userID: e.UserID, tokenID: &e.TokenID, email: &e.Email, expires: &e.ExpiresAt, at: e.RequestedAt}
	case user.PasswordResetRequested:
		r = row{kind: KindPasswordReset, userID: e.UserID, tokenID: &e.TokenID, expires: &e.ExpiresAt, at: e.RequestedAt}
	case user.PasswordChanged:
		if e.Reason == "" {
			return nil // recorded before notices existed
		}
		r = row{kind: KindPasswordChanged, userID: e.UserID, reason: &e.Reason, at: e.ChangedAt}
	case user.RegistrationAttempted:
		r = row{kind: KindRegistrationAttempted, userID: e.UserID, at: e.AttemptedAt}
	case user.EmailChanged:
		// To the old address (email), naming the new one (reason).
		r = row{kind: KindEmailChanged, userID: e.UserID, email: &e.OldEmail, reason: &e.Email, at: e.ChangedAt}
	case mfa.CodeSent:
		r = row{kind: KindMFACode, userID: e.UserID, tokenID: &e.CodeID, email: &e.Email, expires: &e.ExpiresAt, at: e.SentAt}
		if e.Channel == mfa.KindSMS {
			r.kind, r.email = KindMFASMS, &e.Phone
		}
	default:
		return nil
	}
	now := b.p.now()
	if now.Sub(r.at) > b.p.maxAge || (r.expires != nil && !now.Before(*r.expires)) {
		return nil // too old to be of use (a log older than the outbox)
	}
	_, err = b.tx.Exec(ctx, `INSERT INTO `+b.table+` (event_id, event_type, kind, user_id, token_id, email, reason, expires_at, created_at, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (event_id) DO NOTHING`,
		ev.ID, ev.Type, r.kind, r.userID, r.tokenID, r.email, r.reason, r.expires, now.UTC())
	return err
}

func (*batch) Flush(context.Context) error { return nil }

// ErrNotFound: no outbox row has that event id.
var ErrNotFound = errors.New("outbox: no such message")
