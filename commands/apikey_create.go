package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/apikey"
	"github.com/authledger/authledger/domain/access"
	domain "github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// CreateAPIKey creates a key for OwnerID (the caller, or a service
// account an administrator acts for). Held is what the creator may hand
// on: the permissions the key may have (the caller's now, intersected
// with the service account's); Active is how many keys the owner has
// that authenticate now.
type CreateAPIKey struct {
	OwnerID     uuid.UUID
	Name        string
	Permissions []access.Permission
	ExpiresAt   time.Time
	Held        access.Set
	Active      int
	// ServiceAccount: OwnerID must be a service account (else
	// domain.ErrServiceAccountNotFound), and the key's permissions are
	// bounded by what it holds now, read from its stream (not from a
	// follower that may not have seen a service account created just now).
	ServiceAccount bool
	Meta           Meta
}

// CreateAPIKeyResult is the new key: Secret is the key itself, shown
// once (nothing keeps it), Created the event appended.
type CreateAPIKeyResult struct {
	Secret   string
	Created  domain.Created
	Position eventstore.Position
}

// CreateAPIKeyHandler appends api_key.created.v1 to a new key stream.
type CreateAPIKeyHandler struct {
	Keys      *Repository[*domain.Key]
	Users     *Repository[*user.User]
	Catalog   func(ctx context.Context) (*access.Catalog, error)
	DigestKey []byte
	Now       func() time.Time
}

// Handle creates the key.
func (h *CreateAPIKeyHandler) Handle(ctx context.Context, cmd CreateAPIKey) (CreateAPIKeyResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	if cmd.Active >= domain.MaxPerOwner {
		return CreateAPIKeyResult{}, &user.InvalidInputError{Field: "name",
			Message: fmt.Sprintf("at most %d keys may be active at once: revoke one first", domain.MaxPerOwner)}
	}
	held := cmd.Held
	if cmd.ServiceAccount {
		u, err := h.Users.Load(ctx, user.StreamName(cmd.OwnerID))
		if err != nil {
			return CreateAPIKeyResult{}, err
		}
		if !u.ServiceAccount() {
			return CreateAPIKeyResult{}, domain.ErrServiceAccountNotFound
		}
		c, err := h.Catalog(ctx)
		if err != nil {
			return CreateAPIKeyResult{}, err
		}
		held = held.Intersect(c.Effective(u.ActiveRoles(now)))
	}
	s, err := apikey.NewSecret()
	if err != nil {
		return CreateAPIKeyResult{}, err
	}
	k, _ := domain.FromHistory(nil)
	err = k.Create(domain.Spec{KeyID: s.ID(), OwnerID: cmd.OwnerID, Name: cmd.Name, Permissions: cmd.Permissions,
		ExpiresAt: cmd.ExpiresAt, Digest: s.Digest(h.DigestKey)}, held, now)
	if err != nil {
		return CreateAPIKeyResult{}, err
	}
	res, err := h.Keys.Append(ctx, domain.StreamName(s.ID()), 0, cmd.Meta, k.Changes())
	if errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		// A random 122-bit id taken: not in this universe; refuse rather
		// than overwrite.
		return CreateAPIKeyResult{}, fmt.Errorf("%w: %s", ErrConflict, domain.StreamName(s.ID()))
	}
	if err != nil {
		return CreateAPIKeyResult{}, err
	}
	created, _ := k.Changes()[0].(domain.Created)
	return CreateAPIKeyResult{Secret: s.Encode(), Created: created, Position: res.Position}, nil
}
