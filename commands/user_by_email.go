package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
)

// UserByEmail finds a registered user by address, from the log (the
// address's reservation stream, then the user's stream): the operator
// commands and the bootstrap admin name users by email.
type UserByEmail struct {
	Reservations *Repository[*user.EmailReservation]
	Users        *Repository[*user.User]
	// ReservationKey keys the reservation streams (the HMAC of the
	// address).
	ReservationKey []byte
}

// Find returns the user holding email; ErrUserNotFound when none is
// registered with it.
func (f *UserByEmail) Find(ctx context.Context, email string) (uuid.UUID, error) {
	id, held, err := emailHolder(ctx, f.Reservations, f.ReservationKey, email)
	if err != nil {
		return uuid.Nil, err
	}
	if !held {
		return uuid.Nil, ErrUserNotFound
	}
	u, err := f.Users.Load(ctx, user.StreamName(id))
	if err != nil {
		return uuid.Nil, err
	}
	if !u.Registered() {
		return uuid.Nil, ErrUserNotFound
	}
	return id, nil
}
