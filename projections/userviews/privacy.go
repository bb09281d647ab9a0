package userviews

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// PrivacyName is the user_privacy projection's name; TablePrivacy its
// table: per user, the terms accepted (every acceptance) and the erasure.
// It is a projection of its own so that the profiles table keeps its
// shape (ADR 0034).
const (
	PrivacyName  = "user_privacy"
	TablePrivacy = "user_privacy"
)

// Privacy is the user_privacy projection.
type Privacy struct{ decoding }

// NewPrivacy returns the user_privacy projection.
func NewPrivacy() *Privacy { return &Privacy{newDecoding()} }

var (
	_ projector.Projection = (*Privacy)(nil)
	_ projector.Preparer   = (*Privacy)(nil)
)

// Name implements projector.Projection.
func (*Privacy) Name() string { return PrivacyName }

// Filter implements projector.Projection.
func (*Privacy) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{user.EventTermsAccepted, user.EventErased}}
}

// Tables implements projector.Projection.
func (*Privacy) Tables() []string { return []string{TablePrivacy} }

// CreateTables implements projector.Projection. consents is a JSON array
// of {"version","accepted_at"}, oldest first.
func (v *Privacy) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	if v.regErr != nil {
		return fmt.Errorf("identity: %w", v.regErr)
	}
	_, err := tx.Exec(ctx, `CREATE TABLE `+t.Ident(TablePrivacy)+` (
		user_id           uuid        PRIMARY KEY,
		terms_version     text        NOT NULL DEFAULT '',
		terms_accepted_at timestamptz,
		consents          jsonb       NOT NULL DEFAULT '[]',
		erased_at         timestamptz
	)`)
	if err != nil {
		return fmt.Errorf("identity: create %s: %w", TablePrivacy, err)
	}
	return nil
}

// Begin implements projector.Projection.
func (v *Privacy) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	if v.regErr != nil {
		return nil, fmt.Errorf("identity: %w", v.regErr)
	}
	return &privacyBatch{batch{reg: v.reg, tx: tx, b: &pgx.Batch{}, table: t.Ident(TablePrivacy)}}, nil
}

type privacyBatch struct{ batch }

func (b *privacyBatch) Apply(ctx context.Context, rec eventstore.RecordedEvent) error {
	ev, err := decode(ctx, b.reg, rec)
	if err != nil {
		return err
	}
	switch e := ev.(type) {
	case user.TermsAccepted:
		// The event id keeps a replay from adding an acceptance twice.
		b.queue(`INSERT INTO `+b.table+` (user_id, terms_version, terms_accepted_at, consents)
			VALUES ($1, $2, $3, jsonb_build_array(jsonb_build_object('version', $2::text, 'accepted_at', $3::timestamptz, 'event_id', $4::text)))
			ON CONFLICT (user_id) DO UPDATE SET terms_version = $2, terms_accepted_at = $3,
				consents = CASE WHEN `+b.table+`.consents @> jsonb_build_array(jsonb_build_object('event_id', $4::text))
					THEN `+b.table+`.consents
					ELSE `+b.table+`.consents || jsonb_build_array(jsonb_build_object('version', $2::text, 'accepted_at', $3::timestamptz, 'event_id', $4::text)) END`,
			e.UserID, e.Version, e.AcceptedAt.UTC(), rec.ID.String())
	case user.Erased:
		b.queue(`INSERT INTO `+b.table+` (user_id, erased_at) VALUES ($1, $2)
			ON CONFLICT (user_id) DO UPDATE SET erased_at = COALESCE(`+b.table+`.erased_at, $2)`, e.UserID, e.ErasedAt.UTC())
	}
	return nil
}

// PrivacyState is a user_privacy row.
type PrivacyState struct {
	TermsVersion    string
	TermsAcceptedAt *time.Time
	Consents        []ConsentRow
	ErasedAt        *time.Time
}

// ConsentRow is one acceptance of the terms.
type ConsentRow struct {
	Version    string    `json:"version"`
	AcceptedAt time.Time `json:"accepted_at"`
}

// GetPrivacy returns userID's consents and erasure; a user with neither
// has the zero state.
func GetPrivacy(ctx context.Context, q Querier, userID uuid.UUID) (PrivacyState, error) {
	var st PrivacyState
	err := q.QueryRow(ctx, `SELECT terms_version, terms_accepted_at, consents, erased_at FROM `+TablePrivacy+` WHERE user_id = $1`, userID).
		Scan(&st.TermsVersion, &st.TermsAcceptedAt, &st.Consents, &st.ErasedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return PrivacyState{Consents: []ConsentRow{}}, nil
	}
	if err != nil {
		return PrivacyState{}, fmt.Errorf("identity: read privacy state: %w", err)
	}
	if st.Consents == nil {
		st.Consents = []ConsentRow{}
	}
	return st, nil
}
