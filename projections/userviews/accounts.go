package userviews

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
)

// AccountStatesName is the account-states projection: which accounts an
// administrator locked or disabled. A projection of its own (not columns
// of user_profiles) so that existing deployments build it from the start
// of the log without rebuilding the profiles.
const AccountStatesName = "account_states"

// TableAccountStates is its table (a view over the current generation).
const TableAccountStates = "account_states"

// AccountStates is the account_states projection.
type AccountStates struct{ decoding }

// NewAccountStates returns the projection.
func NewAccountStates() *AccountStates { return &AccountStates{newDecoding()} }

var (
	_ projector.Projection = (*AccountStates)(nil)
	_ projector.Preparer   = (*AccountStates)(nil)
)

// Name implements projector.Projection.
func (*AccountStates) Name() string { return AccountStatesName }

// Filter implements projector.Projection.
func (*AccountStates) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{user.EventLockedByAdmin, user.EventUnlocked, user.EventDisabled, user.EventEnabled}}
}

// Tables implements projector.Projection.
func (*AccountStates) Tables() []string { return []string{TableAccountStates} }

// CreateTables implements projector.Projection.
func (a *AccountStates) CreateTables(ctx context.Context, tx pgx.Tx, t projector.Tables) error {
	if a.regErr != nil {
		return fmt.Errorf("identity: %w", a.regErr)
	}
	_, err := tx.Exec(ctx, `CREATE TABLE `+t.Ident(TableAccountStates)+` (
		user_id     uuid        PRIMARY KEY,
		locked      boolean     NOT NULL DEFAULT false,
		disabled    boolean     NOT NULL DEFAULT false,
		changed_at  timestamptz NOT NULL
	)`)
	if err != nil {
		return fmt.Errorf("identity: create %s: %w", TableAccountStates, err)
	}
	return nil
}

// Begin implements projector.Projection.
func (a *AccountStates) Begin(_ context.Context, tx pgx.Tx, t projector.Tables) (projector.Batch, error) {
	if a.regErr != nil {
		return nil, fmt.Errorf("identity: %w", a.regErr)
	}
	return &accountStatesBatch{batch{reg: a.reg, tx: tx, b: &pgx.Batch{}, table: t.Ident(TableAccountStates)}}, nil
}

type accountStatesBatch struct{ batch }

func (b *accountStatesBatch) Apply(ctx context.Context, rec eventstore.RecordedEvent) error {
	ev, err := decode(ctx, b.reg, rec)
	if err != nil {
		return err
	}
	upsert := func(id uuid.UUID, column string, value bool, at time.Time) {
		b.queue(`INSERT INTO `+b.table+` (user_id, `+column+`, changed_at) VALUES ($1, $2, $3)
			ON CONFLICT (user_id) DO UPDATE SET `+column+` = $2, changed_at = GREATEST(`+b.table+`.changed_at, $3)`, id, value, at.UTC())
	}
	switch e := ev.(type) {
	case user.LockedByAdmin:
		upsert(e.UserID, "locked", true, e.LockedAt)
	case user.Unlocked:
		upsert(e.UserID, "locked", false, e.UnlockedAt)
	case user.Disabled:
		upsert(e.UserID, "disabled", true, e.DisabledAt)
	case user.Enabled:
		upsert(e.UserID, "disabled", false, e.EnabledAt)
	}
	return nil
}

// Account is a user as the admin API lists it: the profile and the
// account's state.
type Account struct {
	Profile
	Locked   bool
	Disabled bool
}

// ListAccounts returns one page (1-based) of users, by address, whose
// address or display name contains search (case-insensitively; "" for
// all), and how many match.
func ListAccounts(ctx context.Context, q Querier, search string, page, pageSize int) ([]Account, int64, error) {
	where, args := "", []any{}
	if search != "" {
		// LIKE's own characters stand for themselves.
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(search)
		where = ` WHERE p.email ILIKE $1 OR p.display_name ILIKE $1`
		args = append(args, "%"+esc+"%")
	}
	var total int64
	if err := q.QueryRow(ctx, `SELECT count(*) FROM `+TableProfiles+` p`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("identity: count users: %w", err)
	}
	out := []Account{}
	if total == 0 || int64(page-1)*int64(pageSize) >= total {
		return out, total, nil
	}
	n := len(args)
	rows, err := q.Query(ctx, `SELECT p.user_id, p.email, p.display_name, p.roles, p.created_at, p.last_login_at,
			p.last_failed_login_at, p.locked_until, p.lockouts, p.password_changed_at,
			COALESCE(s.locked, false), COALESCE(s.disabled, false)
		FROM `+TableProfiles+` p LEFT JOIN `+TableAccountStates+` s ON s.user_id = p.user_id`+where+
		fmt.Sprintf(` ORDER BY p.email, p.user_id LIMIT $%d OFFSET $%d`, n+1, n+2),
		append(args, pageSize, (page-1)*pageSize)...)
	if err != nil {
		return nil, 0, fmt.Errorf("identity: list users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a Account
		p := &a.Profile
		if err := rows.Scan(&p.UserID, &p.Email, &p.DisplayName, &p.Roles, &p.CreatedAt, &p.LastLoginAt,
			&p.LastFailedLoginAt, &p.LockedUntil, &p.Lockouts, &p.PasswordChangedAt, &a.Locked, &a.Disabled); err != nil {
			return nil, 0, fmt.Errorf("identity: list users: %w", err)
		}
		if p.Roles == nil {
			p.Roles = []string{}
		}
		out = append(out, a)
	}
	return out, total, rows.Err()
}
