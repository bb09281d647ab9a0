package userviews

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// EmailVerificationsName is the projection of which users verified their
// current address: a projection of its own (not a column of
// user_profiles) so that existing deployments build it from the start of
// the log without rebuilding the profiles.
const EmailVerificationsName = "email_verifications"

// TableEmailVerifications is its table (a view over the current generation).
const TableEmailVerifications = "email_verifications"

// EmailVerifications is the email_verifications projection.
type EmailVerifications struct{ decoding }

// NewEmailVerifications returns the projection.
func NewEmailVerifications() *EmailVerifications { return &EmailVerifications{newDecoding()} }

var (
	_ projector.Projection = (*EmailVerifications)(nil)
	_ projector.Preparer   = (*EmailVerifications)(nil)
)

// Name implements projector.Projection.
func (*EmailVerifications) Name() string { return EmailVerificationsName }

// Filter implements projector.Projection.
func (*EmailVerifications) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{user.EventEmailVerified, user.EventEmailChanged, user.EventErased}}
}

// Tables implements projector.Projection.
func (*EmailVerifications) Tables() []string { return []string{TableEmailVerifications} }

// CreateTables implements projector.Projection.
func (v *EmailVerifications) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	if v.regErr != nil {
		return fmt.Errorf("identity: %w", v.regErr)
	}
	_, err := tx.Exec(ctx, `CREATE TABLE `+t.Ident(TableEmailVerifications)+` (
		user_id     uuid        PRIMARY KEY,
		email       text        NOT NULL,
		verified_at timestamptz NOT NULL
	)`)
	if err != nil {
		return fmt.Errorf("identity: create %s: %w", TableEmailVerifications, err)
	}
	return nil
}

// Begin implements projector.Projection.
func (v *EmailVerifications) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	if v.regErr != nil {
		return nil, fmt.Errorf("identity: %w", v.regErr)
	}
	return &verificationsBatch{batch{reg: v.reg, tx: tx, b: &pgx.Batch{}, table: t.Ident(TableEmailVerifications)}}, nil
}

type verificationsBatch struct{ batch }

func (b *verificationsBatch) Apply(ctx context.Context, rec eventstore.RecordedEvent) error {
	ev, err := decode(ctx, b.reg, rec)
	if err != nil {
		return err
	}
	upsert := `INSERT INTO ` + b.table + ` (user_id, email, verified_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET email = $2, verified_at = $3`
	switch e := ev.(type) {
	case user.EmailVerified:
		b.queue(upsert, e.UserID, e.Email, e.VerifiedAt.UTC())
	case user.EmailChanged:
		b.queue(upsert, e.UserID, e.Email, e.ChangedAt.UTC())
	case user.Erased:
		b.queue(`DELETE FROM `+b.table+` WHERE user_id = $1`, e.UserID)
	}
	return nil
}

// EmailVerified reports whether userID verified its current address (the
// verified address is the profile's).
func EmailVerified(ctx context.Context, q Querier, userID uuid.UUID, email string) (bool, error) {
	var verified string
	err := q.QueryRow(ctx, `SELECT email FROM `+TableEmailVerifications+` WHERE user_id = $1`, userID).Scan(&verified)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("identity: email verification: %w", err)
	}
	return verified == email, nil
}
