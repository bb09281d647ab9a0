// Package identity is the read side of the identity core (issue 5): two
// projections over the user and session streams.
//
//   - Profiles ("user_profiles"): one row per registered user with the
//     address, display name, roles, registration time, last login (from
//     session.started.v1: successful logins are recorded on the session
//     stream only) and lockout state. GET /v1/me reads it.
//   - Sessions ("sessions"): one row per login with its start, last refresh,
//     client, login method, expiry and revocation. GET /v1/auth/sessions
//     reads it.
//
// # Why two projections
//
// Each has its own checkpoint, so each can be rebuilt alone (`authledger
// projections rebuild sessions` leaves profiles serving), a failure in one
// does not stop the other, and a query waits (X-Consistency-Token) only for
// the projection it reads: /v1/me does not wait behind a burst of refreshes.
// The price is that the profile projection also reads session.started.v1
// for last_login_at, which costs one filtered subscription more.
//
// # The address
//
// user.registered.v1 carries the address in clear, in its normalised form
// (trimmed, NFKC, lower-cased, an internationalised domain in its xn--
// form: user.NormalizeEmail; accounts registered before NFKC and IDNA keep
// the NFC form they had); the letter case the user typed is not in the
// log, so "Dave@Example.com" reads back as "dave@example.com". The
// reservation streams hold only an HMAC of it.
//
// # Writing
//
// Apply decodes an event (through the domain's event registry, so old
// versions are upcast) and queues its statement on a pgx.Batch; Flush sends
// the batch in one round trip, in log order, inside the projection's
// transaction. Statements are idempotent (insert-if-absent, GREATEST,
// set-based role edits), a second line of defence behind the checkpoint.
//
// Tables are generation-versioned (projections/projector); queries use the
// views user_profiles and sessions.
package userviews

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// Projection names (their checkpoints, and the names the consistency
// middleware waits for). Renaming one rebuilds it from the start of the log.
const (
	ProfilesName = "user_profiles"
	SessionsName = "sessions"
)

// Base names of the read-model tables, which are also the views queries use.
const (
	TableProfiles = "user_profiles"
	TableSessions = "sessions"
)

// newRegistry is the decoding table of both projections: the user and
// session events with whatever upcasters their packages install.
func newRegistry() (*events.Registry, error) {
	r := events.NewRegistry()
	if err := user.RegisterEvents(r); err != nil {
		return nil, err
	}
	if err := session.RegisterEvents(r); err != nil {
		return nil, err
	}
	return r, nil
}

// decoding is what each projection here embeds: the shared decoding table
// and Prepare. regErr is a failure to build the table (two event types
// under one name: a programming error). It fails CreateTables and Begin,
// so the runtime reports the projection failed, rather than making the
// constructors fallible.
type decoding struct {
	reg    *events.Registry
	regErr error
}

func newDecoding() decoding {
	reg, err := newRegistry()
	return decoding{reg: reg, regErr: err}
}

// Prepare implements projector.Preparer: decoding, ahead of Apply.
func (d decoding) Prepare(ev eventstore.RecordedEvent) any {
	if d.regErr != nil {
		return decoded{err: d.regErr}
	}
	e, err := d.reg.Decode(ev.Type, ev.Data)
	return decoded{ev: e, err: err}
}

// decoded is Prepare's result: the typed event or the decoding error.
type decoded struct {
	ev  events.Event
	err error
}

func decode(ctx context.Context, reg *events.Registry, ev eventstore.RecordedEvent) (events.Event, error) {
	var d decoded
	if del, ok := projector.DeliveryFrom(ctx); ok && del.Event.ID == ev.ID {
		if p, ok := del.Prepared.(decoded); ok {
			d = p
		}
	}
	if d.ev == nil && d.err == nil {
		d.ev, d.err = reg.Decode(ev.Type, ev.Data)
	}
	if d.err != nil {
		return nil, fmt.Errorf("identity: decode %s %s@%d: %w", ev.Type, ev.Stream, ev.Revision, d.err)
	}
	return d.ev, nil
}

// utc returns t in UTC, or nil for the zero time (a NULL column).
func utc(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// batch queues statements and sends them at Flush, in order.
type batch struct {
	reg   *events.Registry
	tx    pgx.Tx
	b     *pgx.Batch
	table string // the generation's quoted table
}

func (b *batch) queue(sql string, args ...any) { b.b.Queue(sql, args...) }

func (b *batch) Flush(ctx context.Context) error {
	if b.b.Len() == 0 {
		return nil
	}
	n := b.b.Len()
	err := b.tx.SendBatch(ctx, b.b).Close()
	b.b = &pgx.Batch{}
	if err != nil {
		return fmt.Errorf("identity: write %d statements to %s: %w", n, b.table, err)
	}
	return nil
}

// ---------------------------------------------------------------- profiles

// Profiles is the user_profiles projection.
type Profiles struct{ decoding }

// NewProfiles returns the user_profiles projection.
func NewProfiles() *Profiles {
	return &Profiles{newDecoding()}
}

var (
	_ projector.Projection = (*Profiles)(nil)
	_ projector.Indexer    = (*Profiles)(nil)
	_ projector.Preparer   = (*Profiles)(nil)
)

// Name implements projector.Projection.
func (*Profiles) Name() string { return ProfilesName }

// Filter implements projector.Projection: the user events that change a
// profile, and logins. Reservation events are left out (they carry no
// address, only an HMAC in the stream name), so are password-hash events.
func (*Profiles) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{
		user.EventRegistered, user.EventPasswordChanged, user.EventLoginFailed, user.EventLocked,
		user.EventUnlocked, user.EventRoleGranted, user.EventRoleRevoked, user.EventDisplayNameChanged,
		user.EventEmailChanged, session.EventStarted, user.EventErased,
	}}
}

// Tables implements projector.Projection.
func (*Profiles) Tables() []string { return []string{TableProfiles} }

// CreateTables implements projector.Projection.
func (p *Profiles) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	if p.regErr != nil {
		return fmt.Errorf("identity: %w", p.regErr)
	}
	_, err := tx.Exec(ctx, `CREATE TABLE `+t.Ident(TableProfiles)+` (
		user_id              uuid        PRIMARY KEY,
		email                text        NOT NULL,
		display_name         text        NOT NULL,
		roles                text[]      NOT NULL,
		created_at           timestamptz NOT NULL,
		last_login_at        timestamptz,
		last_failed_login_at timestamptz,
		locked_until         timestamptz,
		lockouts             integer     NOT NULL DEFAULT 0,
		password_changed_at  timestamptz
	)`)
	if err != nil {
		return fmt.Errorf("identity: create %s: %w", TableProfiles, err)
	}
	return nil
}

// CreateIndexes implements projector.Indexer. The address index is not
// unique: the reservation stream holds that rule, and a released address
// claimed again would otherwise stop the projection.
func (*Profiles) CreateIndexes(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	idx := pgx.Identifier{t.Name(TableProfiles) + "_email"}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE INDEX `+idx+` ON `+t.Ident(TableProfiles)+` (email)`); err != nil {
		return fmt.Errorf("identity: index %s: %w", TableProfiles, err)
	}
	return nil
}

// Begin implements projector.Projection.
func (p *Profiles) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	if p.regErr != nil {
		return nil, fmt.Errorf("identity: %w", p.regErr)
	}
	return &profilesBatch{batch{reg: p.reg, tx: tx, b: &pgx.Batch{}, table: t.Ident(TableProfiles)}}, nil
}

type profilesBatch struct{ batch }

func (b *profilesBatch) Apply(ctx context.Context, rec eventstore.RecordedEvent) error {
	ev, err := decode(ctx, b.reg, rec)
	if err != nil {
		return err
	}
	tbl := b.table
	switch e := ev.(type) {
	case user.Registered:
		roles := slices.Sorted(slices.Values(e.Roles))
		if roles == nil {
			roles = []string{}
		}
		b.queue(`INSERT INTO `+tbl+` (user_id, email, display_name, roles, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO NOTHING`,
			e.UserID, e.Email, e.DisplayName, roles, e.RegisteredAt.UTC())
	case session.Started:
		// The login read the user stream before appending, so the log
		// always holds the registration first; a missing row is not
		// possible and would be left alone.
		b.queue(`UPDATE `+tbl+` SET last_login_at = GREATEST(last_login_at, $2)
			WHERE user_id = $1`, e.UserID, e.StartedAt.UTC())
	case user.LoginFailed:
		b.queue(`UPDATE `+tbl+` SET last_failed_login_at = GREATEST(last_failed_login_at, $2) WHERE user_id = $1`,
			e.UserID, e.FailedAt.UTC())
	case user.Locked:
		b.queue(`UPDATE `+tbl+` SET locked_until = $2, lockouts = $3 WHERE user_id = $1`,
			e.UserID, utc(e.LockedUntil), e.Lockout)
	case user.Unlocked:
		b.queue(`UPDATE `+tbl+` SET locked_until = NULL, lockouts = 0 WHERE user_id = $1`, e.UserID)
	case user.PasswordChanged:
		b.queue(`UPDATE `+tbl+` SET password_changed_at = $2 WHERE user_id = $1`, e.UserID, e.ChangedAt.UTC())
	case user.RoleGranted:
		// Sorted in byte order, as the aggregate keeps them.
		b.queue(`UPDATE `+tbl+` SET roles = ARRAY(SELECT r FROM (SELECT DISTINCT unnest(roles || ARRAY[$2::text]) AS r) AS d ORDER BY r COLLATE "C")
			WHERE user_id = $1`, e.UserID, e.Role)
	case user.RoleRevoked:
		b.queue(`UPDATE `+tbl+` SET roles = array_remove(roles, $2::text) WHERE user_id = $1`, e.UserID, e.Role)
	case user.DisplayNameChanged:
		b.queue(`UPDATE `+tbl+` SET display_name = $2 WHERE user_id = $1`, e.UserID, e.DisplayName)
	case user.EmailChanged:
		b.queue(`UPDATE `+tbl+` SET email = $2 WHERE user_id = $1`, e.UserID, e.Email)
	case user.Erased:
		// The profile stays, without address or name (ADR 0034); the
		// erasure time is in user_privacy.
		b.queue(`UPDATE `+tbl+` SET email = '', display_name = '' WHERE user_id = $1`, e.UserID)
	}
	return nil
}

// ---------------------------------------------------------------- sessions

// Sessions is the sessions projection.
type Sessions struct{ decoding }

// NewSessions returns the sessions projection.
func NewSessions() *Sessions {
	return &Sessions{newDecoding()}
}

var (
	_ projector.Projection = (*Sessions)(nil)
	_ projector.Indexer    = (*Sessions)(nil)
	_ projector.Preparer   = (*Sessions)(nil)
)

// Name implements projector.Projection.
func (*Sessions) Name() string { return SessionsName }

// Filter implements projector.Projection: every session event.
func (*Sessions) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{
		session.EventStarted, session.EventRefreshed, session.EventReuseDetected, session.EventRevoked,
		session.EventRevokedBefore, user.EventErased,
	}}
}

// Tables implements projector.Projection.
func (*Sessions) Tables() []string { return []string{TableSessions} }

// CreateTables implements projector.Projection. ip and user_agent are the
// latest the session was used from (a refresh that sends them replaces the
// login's), as the session aggregate keeps them.
func (s *Sessions) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	if s.regErr != nil {
		return fmt.Errorf("identity: %w", s.regErr)
	}
	_, err := tx.Exec(ctx, `CREATE TABLE `+t.Ident(TableSessions)+` (
		session_id        uuid        PRIMARY KEY,
		user_id           uuid        NOT NULL,
		method            text        NOT NULL,
		amr               text[]      NOT NULL,
		ip                text        NOT NULL,
		user_agent        text        NOT NULL,
		started_at        timestamptz NOT NULL,
		last_used_at      timestamptz NOT NULL,
		idle_expires_at   timestamptz NOT NULL,
		expires_at        timestamptz NOT NULL,
		refreshes         integer     NOT NULL DEFAULT 0,
		reuse_detected_at timestamptz,
		revoked_at        timestamptz,
		revoke_reason     text
	)`)
	if err != nil {
		return fmt.Errorf("identity: create %s: %w", TableSessions, err)
	}
	return nil
}

// CreateIndexes implements projector.Indexer: a user's live sessions in list
// order (the partial index leaves revoked ones out, which are most rows
// over time), and all of a user's sessions for history.
func (*Sessions) CreateIndexes(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	raw, tbl := t.Name(TableSessions), t.Ident(TableSessions)
	for _, s := range []string{
		`CREATE INDEX ` + pgx.Identifier{raw + "_user_live"}.Sanitize() + ` ON ` + tbl +
			` (user_id, started_at DESC, session_id DESC) WHERE revoked_at IS NULL`,
		`CREATE INDEX ` + pgx.Identifier{raw + "_user"}.Sanitize() + ` ON ` + tbl + ` (user_id, started_at)`,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("identity: index %s: %w", TableSessions, err)
		}
	}
	return nil
}

// Begin implements projector.Projection.
func (s *Sessions) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	if s.regErr != nil {
		return nil, fmt.Errorf("identity: %w", s.regErr)
	}
	return &sessionsBatch{batch{reg: s.reg, tx: tx, b: &pgx.Batch{}, table: t.Ident(TableSessions)}}, nil
}

type sessionsBatch struct{ batch }

func (b *sessionsBatch) Apply(ctx context.Context, rec eventstore.RecordedEvent) error {
	ev, err := decode(ctx, b.reg, rec)
	if err != nil {
		return err
	}
	tbl := b.table
	switch e := ev.(type) {
	case session.Started:
		amr := e.AMR
		if amr == nil {
			amr = []string{}
		}
		b.queue(`INSERT INTO `+tbl+` (session_id, user_id, method, amr, ip, user_agent, started_at, last_used_at, idle_expires_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9) ON CONFLICT (session_id) DO NOTHING`,
			e.SessionID, e.UserID, e.Method, amr, e.IP, e.UserAgent, e.StartedAt.UTC(), e.IdleExpiresAt.UTC(), e.ExpiresAt.UTC())
	case session.Refreshed:
		// GREATEST keeps a replayed older refresh from moving time back.
		b.queue(`UPDATE `+tbl+` SET last_used_at = GREATEST(last_used_at, $2),
				idle_expires_at = GREATEST(idle_expires_at, $3),
				refreshes = GREATEST(refreshes, $4),
				ip = COALESCE(NULLIF($5, ''), ip),
				user_agent = COALESCE(NULLIF($6, ''), user_agent)
			WHERE session_id = $1`,
			e.SessionID, e.RefreshedAt.UTC(), e.IdleExpiresAt.UTC(), e.Generation, e.IP, e.UserAgent)
	case session.ReuseDetected:
		b.queue(`UPDATE `+tbl+` SET reuse_detected_at = COALESCE(reuse_detected_at, $2) WHERE session_id = $1`,
			e.SessionID, e.DetectedAt.UTC())
	case session.Revoked:
		// The first revocation wins: the aggregate records only one.
		b.queue(`UPDATE `+tbl+` SET revoked_at = $2, revoke_reason = $3 WHERE session_id = $1 AND revoked_at IS NULL`,
			e.SessionID, e.RevokedAt.UTC(), string(e.Reason))
	case session.RevokedBefore:
		// A bulk revocation writes no session stream; the list shows its
		// sessions ended from here. One narrowed to a role takes the
		// role's holders as the profiles read model has them.
		const set = ` SET revoked_at = $2, revoke_reason = 'revoked_before' WHERE revoked_at IS NULL AND started_at < $1`
		switch {
		case e.UserID != uuid.Nil:
			b.queue(`UPDATE `+tbl+set+` AND user_id = $3`, e.Before.UTC(), e.RevokedAt.UTC(), e.UserID)
		case e.Role != "":
			b.queue(`UPDATE `+tbl+set+` AND user_id IN (SELECT user_id FROM `+TableProfiles+` WHERE $3 = ANY(roles))`,
				e.Before.UTC(), e.RevokedAt.UTC(), e.Role)
		default:
			b.queue(`UPDATE `+tbl+set, e.Before.UTC(), e.RevokedAt.UTC())
		}
	case user.Erased:
		// Where the user's sessions came from is personal data.
		b.queue(`UPDATE `+tbl+` SET ip = '', user_agent = '' WHERE user_id = $1`, e.UserID)
	}
	return nil
}
