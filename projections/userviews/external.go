package userviews

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// ExternalIdentitiesName is the external_identities projection's name (its
// checkpoint). Renaming it rebuilds it from the start of the log.
const ExternalIdentitiesName = "external_identities"

// TableExternalIdentities is the base name (and view) of its table.
const TableExternalIdentities = "external_identities"

// ExternalIdentities is the external_identities projection: one row per
// user and provider an external login linked (user.external_identity_linked.v1),
// with the last renewal of the user's provider tokens
// (session.external_tokens_refreshed.v1). GET /v1/me joins it to the
// profile.
//
// It is a projection of its own rather than columns of user_profiles so
// that deployments that already serve a user_profiles generation need no
// schema change: a projection added to the list starts at generation 1
// and catches up from the start of the log, while the tables of
// user_profiles belong to the service role, which migrations (run as the
// owner) cannot alter.
type ExternalIdentities struct{ decoding }

// NewExternalIdentities returns the external_identities projection.
func NewExternalIdentities() *ExternalIdentities {
	return &ExternalIdentities{newDecoding()}
}

var (
	_ projector.Projection = (*ExternalIdentities)(nil)
	_ projector.Indexer    = (*ExternalIdentities)(nil)
	_ projector.Preparer   = (*ExternalIdentities)(nil)
)

// Name implements projector.Projection.
func (*ExternalIdentities) Name() string { return ExternalIdentitiesName }

// Filter implements projector.Projection: the links and the renewals.
func (*ExternalIdentities) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{user.EventExternalIdentityLinked, user.EventExternalIdentityUnlinked, session.EventExternalTokensRefreshed, user.EventErased}}
}

// Tables implements projector.Projection.
func (*ExternalIdentities) Tables() []string { return []string{TableExternalIdentities} }

// CreateTables implements projector.Projection.
func (p *ExternalIdentities) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	if p.regErr != nil {
		return fmt.Errorf("identity: %w", p.regErr)
	}
	_, err := tx.Exec(ctx, `CREATE TABLE `+t.Ident(TableExternalIdentities)+` (
		user_id          uuid        NOT NULL,
		provider         text        NOT NULL,
		external_user_id text        NOT NULL,
		provider_email   text        NOT NULL,
		linked_at        timestamptz NOT NULL,
		last_token_refresh timestamptz,
		PRIMARY KEY (user_id, provider)
	)`)
	if err != nil {
		return fmt.Errorf("identity: create %s: %w", TableExternalIdentities, err)
	}
	return nil
}

// CreateIndexes implements projector.Indexer: the user of a provider's
// subject, for the token check of provider tokens. Not unique: the
// reservation stream holds that rule.
func (*ExternalIdentities) CreateIndexes(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	idx := pgx.Identifier{t.Name(TableExternalIdentities) + "_subject"}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE INDEX `+idx+` ON `+t.Ident(TableExternalIdentities)+` (provider, external_user_id)`); err != nil {
		return fmt.Errorf("identity: index %s: %w", TableExternalIdentities, err)
	}
	return nil
}

// Begin implements projector.Projection.
func (p *ExternalIdentities) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	if p.regErr != nil {
		return nil, fmt.Errorf("identity: %w", p.regErr)
	}
	return &externalBatch{batch{reg: p.reg, tx: tx, b: &pgx.Batch{}, table: t.Ident(TableExternalIdentities)}}, nil
}

type externalBatch struct{ batch }

func (b *externalBatch) Apply(ctx context.Context, rec eventstore.RecordedEvent) error {
	ev, err := decode(ctx, b.reg, rec)
	if err != nil {
		return err
	}
	switch e := ev.(type) {
	case user.ExternalIdentityLinked:
		// The aggregate links a user to one identity per provider and
		// never relinks: the first row stands on replay.
		b.queue(`INSERT INTO `+b.table+` (user_id, provider, external_user_id, provider_email, linked_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, provider) DO NOTHING`,
			e.UserID, e.Provider, e.ExternalUserID, e.ProviderEmail, e.LinkedAt.UTC())
	case user.ExternalIdentityUnlinked:
		// Only the identity that was linked: a later link of another
		// stands.
		b.queue(`DELETE FROM `+b.table+` WHERE user_id = $1 AND provider = $2 AND external_user_id = $3`,
			e.UserID, e.Provider, e.ExternalUserID)
	case user.Erased:
		b.queue(`DELETE FROM `+b.table+` WHERE user_id = $1`, e.UserID)
	case session.ExternalTokensRefreshed:
		// An external session's user is linked before the session starts,
		// so the row is there; GREATEST keeps a replay from moving time
		// back.
		b.queue(`UPDATE `+b.table+` SET last_token_refresh = GREATEST(last_token_refresh, $2) WHERE user_id = $1`,
			e.UserID, e.RefreshedAt.UTC())
	}
	return nil
}

// ExternalIdentity is an external_identities row.
type ExternalIdentity struct {
	UserID         uuid.UUID
	Provider       string
	ExternalUserID string
	ProviderEmail  string
	// LastTokenRefresh is the last renewal of the user's provider tokens
	// by the vault's refresher; nil before the first.
	LastTokenRefresh *time.Time
}

// GetExternalIdentity reads the user's latest link (one provider is
// configured at a time; a link to a former one stays until it is
// replaced); ok is false when the user is not linked (or the projection
// has not reached the link). It does not depend on external auth being
// on: after a rollback the profile still shows the link.
func GetExternalIdentity(ctx context.Context, q Querier, userID uuid.UUID) (ExternalIdentity, bool, error) {
	x := ExternalIdentity{UserID: userID}
	err := q.QueryRow(ctx, `SELECT provider, external_user_id, provider_email, last_token_refresh FROM `+TableExternalIdentities+`
		WHERE user_id = $1 ORDER BY linked_at DESC, provider LIMIT 1`, userID).Scan(&x.Provider, &x.ExternalUserID, &x.ProviderEmail, &x.LastTokenRefresh)
	if errors.Is(err, pgx.ErrNoRows) {
		return ExternalIdentity{}, false, nil
	}
	if err != nil {
		return ExternalIdentity{}, false, fmt.Errorf("identity: read external identity: %w", err)
	}
	return x, true, nil
}

// Identity is one linked identity as GET /v1/me/identities lists it.
type Identity struct {
	Provider       string    `json:"provider"`
	ExternalUserID string    `json:"external_user_id"`
	ProviderEmail  string    `json:"provider_email"`
	LinkedAt       time.Time `json:"linked_at"`
}

// ListExternalIdentities reads every identity linked to the user, by
// provider.
func ListExternalIdentities(ctx context.Context, q Querier, userID uuid.UUID) ([]Identity, error) {
	rows, err := q.Query(ctx, `SELECT provider, external_user_id, provider_email, linked_at FROM `+TableExternalIdentities+`
		WHERE user_id = $1 ORDER BY provider`, userID)
	if err != nil {
		return nil, fmt.Errorf("identity: list external identities: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Identity, error) {
		var x Identity
		err := r.Scan(&x.Provider, &x.ExternalUserID, &x.ProviderEmail, &x.LinkedAt)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("identity: list external identities: %w", err)
	}
	return out, nil
}
