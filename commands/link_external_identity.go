package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// ErrNoAccount: no registered user holds the address (`users link` reports
// the row; it never reaches HTTP).
var ErrNoAccount = errors.New("commands: no account has this address")

// LinkExternalIdentity links the local account holding Email to the
// provider's ExternalUserID (`authledger users link`), as a first
// external login would, without the provider being asked.
type LinkExternalIdentity struct {
	Email          string
	ExternalUserID string
	// DryRun checks everything and appends nothing.
	DryRun bool
	Meta   Meta
}

// LinkExternalIdentityResult says whom the row linked and whether it was
// new (false: already linked to that identity).
type LinkExternalIdentityResult struct {
	UserID   uuid.UUID
	Linked   bool
	Position eventstore.Position
}

// LinkExternalIdentityHandler holds the identity with its reservation
// stream (NoStream), then links on the user stream, the order a login
// uses, so that a retried row completes a crashed one.
type LinkExternalIdentityHandler struct {
	Identities     *Repository[*user.ExternalIdentityReservation]
	Users          *Repository[*user.User]
	Reservations   *Repository[*user.EmailReservation]
	ReservationKey []byte
	// Provider names the provider (its issuer), as logins name it.
	Provider string
	Now      func() time.Time
}

// Handle links. An address no registered user holds is ErrNoAccount; an
// account linked to another identity, or an identity held by another
// account, user.ErrExternalIdentityConflict.
func (h *LinkExternalIdentityHandler) Handle(ctx context.Context, cmd LinkExternalIdentity) (LinkExternalIdentityResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	holder, held, err := emailHolder(ctx, h.Reservations, h.ReservationKey, cmd.Email)
	if err != nil {
		return LinkExternalIdentityResult{}, err
	}
	if !held {
		return LinkExternalIdentityResult{}, ErrNoAccount
	}
	u, err := h.Users.Load(ctx, user.StreamName(holder))
	if err != nil {
		return LinkExternalIdentityResult{}, err
	}
	if !u.Registered() {
		return LinkExternalIdentityResult{}, ErrNoAccount
	}
	ident := user.ExternalIdentity{Provider: h.Provider, ExternalUserID: cmd.ExternalUserID, ProviderEmail: u.Email()}
	if cur, ok := u.ExternalIdentity(h.Provider); ok {
		if cur.ExternalUserID != cmd.ExternalUserID {
			return LinkExternalIdentityResult{UserID: holder}, user.ErrExternalIdentityConflict
		}
		return LinkExternalIdentityResult{UserID: holder}, nil
	}
	stream := user.ExternalIdentityStream(h.ReservationKey, h.Provider, cmd.ExternalUserID)
	r, err := h.Identities.Load(ctx, stream)
	if err != nil {
		return LinkExternalIdentityResult{}, err
	}
	if other, taken := r.Holder(); taken && other != holder {
		return LinkExternalIdentityResult{UserID: holder}, fmt.Errorf("%w: the identity is linked to user %s", user.ErrExternalIdentityConflict, other)
	}
	// The link's own checks, before anything is appended.
	if err := u.LinkExternalIdentity(ident, now); err != nil {
		return LinkExternalIdentityResult{UserID: holder}, err
	}
	if cmd.DryRun {
		return LinkExternalIdentityResult{UserID: holder, Linked: true}, nil
	}
	if _, err := h.Identities.Update(ctx, stream, cmd.Meta, func(r *user.ExternalIdentityReservation) error {
		return r.Reserve(holder, now)
	}); err != nil {
		return LinkExternalIdentityResult{UserID: holder}, err
	}
	res, err := h.Users.Update(ctx, user.StreamName(holder), cmd.Meta, func(u *user.User) error {
		return u.LinkExternalIdentity(ident, now)
	})
	if err != nil {
		return LinkExternalIdentityResult{UserID: holder}, err
	}
	return LinkExternalIdentityResult{UserID: holder, Linked: true, Position: res.Position}, nil
}
