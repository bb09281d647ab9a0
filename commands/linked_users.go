package commands

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
)

// LinkedUsers finds the local user an external provider's subject is
// linked to, for the token check of provider tokens: through the
// identity's reservation stream and the user stream (the event store,
// strongly consistent), so a link a login made a moment ago is found on
// every instance.
type LinkedUsers struct {
	Identities     *Repository[*user.ExternalIdentityReservation]
	Users          *Repository[*user.User]
	ReservationKey []byte
	// Provider names the provider as the links do (its issuer).
	Provider string
}

// Linked returns the user linked to subject and the user's roles; ok is
// false when no registered user is linked to it.
func (l *LinkedUsers) Linked(ctx context.Context, subject string) (uuid.UUID, []string, bool, error) {
	r, err := l.Identities.Load(ctx, user.ExternalIdentityStream(l.ReservationKey, l.Provider, subject))
	if err != nil {
		return uuid.Nil, nil, false, fmt.Errorf("commands: linked user: %w", err)
	}
	holder, held := r.Holder()
	if !held {
		return uuid.Nil, nil, false, nil
	}
	u, err := l.Users.Load(ctx, user.StreamName(holder))
	if err != nil {
		return uuid.Nil, nil, false, fmt.Errorf("commands: linked user: %w", err)
	}
	// A reservation whose login crashed before the link is no link yet.
	if x, ok := u.ExternalIdentity(l.Provider); !u.Registered() || !ok || x.ExternalUserID != subject {
		return uuid.Nil, nil, false, nil
	}
	return holder, u.Roles(), true, nil
}
