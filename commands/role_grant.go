package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// GrantRole grants a role to a user, until ExpiresAt (zero: no expiry).
type GrantRole struct {
	UserID    uuid.UUID
	Role      string
	ExpiresAt time.Time
	Meta      Meta
}

// GrantRoleHandler checks the role exists (the roles stream, read only),
// then appends the grant to the user's stream. A grant of a role deleted
// between the two counts for nothing (deleted names are never reused).
type GrantRoleHandler struct {
	Users *Repository[*user.User]
	Roles *Repository[*access.Catalog]
	Now   func() time.Time
}

// Handle grants; the same grant twice appends nothing (zero Position).
func (h *GrantRoleHandler) Handle(ctx context.Context, cmd GrantRole) (eventstore.AppendResult, error) {
	catalog, err := h.Roles.Load(ctx, access.StreamName)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if _, ok := catalog.Role(cmd.Role); !ok {
		return eventstore.AppendResult{}, fmt.Errorf("%w: %s", access.ErrRoleNotFound, cmd.Role)
	}
	return h.Users.Update(ctx, user.StreamName(cmd.UserID), cmd.Meta, func(u *user.User) error {
		if !u.Registered() {
			return ErrUserNotFound
		}
		return u.GrantRoleUntil(cmd.Role, cmd.ExpiresAt, h.Now())
	})
}

// RevokeRole takes a role from a user.
type RevokeRole struct {
	UserID uuid.UUID
	Role   string
	Meta   Meta
}

// RevokeRoleHandler appends the revocation to the user's stream; a role
// not held appends nothing.
type RevokeRoleHandler struct {
	Users *Repository[*user.User]
	Now   func() time.Time
}

// Handle revokes.
func (h *RevokeRoleHandler) Handle(ctx context.Context, cmd RevokeRole) (eventstore.AppendResult, error) {
	return h.Users.Update(ctx, user.StreamName(cmd.UserID), cmd.Meta, func(u *user.User) error {
		if !u.Registered() {
			return ErrUserNotFound
		}
		return u.RevokeRole(cmd.Role, h.Now())
	})
}
