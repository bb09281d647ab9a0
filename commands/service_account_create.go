package commands

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// CreateServiceAccount creates an account for a machine with Roles (the
// caller has checked that the creator holds every permission they
// give).
type CreateServiceAccount struct {
	Name  string
	Roles []string
	Meta  Meta
}

// CreateServiceAccountResult is the account's registration appended.
type CreateServiceAccountResult struct {
	Registered user.Registered
	Position   eventstore.Position
}

// CreateServiceAccountHandler appends user.registered.v1 (service
// account) to a new user stream.
type CreateServiceAccountHandler struct {
	Users *Repository[*user.User]
	Now   func() time.Time
}

// Handle creates the account.
func (h *CreateServiceAccountHandler) Handle(ctx context.Context, cmd CreateServiceAccount) (CreateServiceAccountResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	u, err := user.RegisterServiceAccount(uuid.New(), cmd.Name, cmd.Roles, now)
	if err != nil {
		return CreateServiceAccountResult{}, err
	}
	reg, _ := u.Changes()[0].(user.Registered)
	res, err := h.Users.Append(ctx, user.StreamName(reg.UserID), 0, cmd.Meta, u.Changes())
	if err != nil {
		return CreateServiceAccountResult{}, err
	}
	return CreateServiceAccountResult{Registered: reg, Position: res.Position}, nil
}
