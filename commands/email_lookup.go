package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
)

// emailHolder finds who holds the address a user typed: the holder of the
// first held stream of user.EmailReservationStreams, which puts the stream
// the address was reserved under before NFKC and IDNA first, so that every
// account registered then keeps its login. An address valid under neither
// normal form is held by nobody.
func emailHolder(ctx context.Context, res *Repository[*user.EmailReservation], key []byte, email string) (uuid.UUID, bool, error) {
	for _, stream := range user.EmailReservationStreams(key, email) {
		r, err := res.Load(ctx, stream)
		if err != nil {
			return uuid.Nil, false, err
		}
		if holder, held := r.Holder(); held {
			return holder, true, nil
		}
	}
	return uuid.Nil, false, nil
}

// heldUnderAnotherSpelling reports whether a registered user holds email
// through a reservation other than current (its normal form's stream):
// one made before NFKC and IDNA, under the V1 form or the other spelling
// of its domain. Those streams are no longer written, so reading them
// before reserving current races with nothing.
func heldUnderAnotherSpelling(ctx context.Context, res *Repository[*user.EmailReservation], users *Repository[*user.User], key []byte, email, current string) (bool, error) {
	for _, stream := range user.EmailReservationStreams(key, email) {
		if stream == current {
			continue
		}
		r, err := res.Load(ctx, stream)
		if err != nil {
			return false, err
		}
		holder, held := r.Holder()
		if !held {
			continue
		}
		u, err := users.Load(ctx, user.StreamName(holder))
		if err != nil {
			return false, err
		}
		if u.Registered() {
			return true, nil
		}
	}
	return false, nil
}
