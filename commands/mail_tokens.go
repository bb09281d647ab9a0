package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/mailtoken"
	"github.com/authledger/authledger/domain/user"
)

// newMailToken chooses a token id for userID and returns it with the
// digest of its token, what the log holds (the mail's token is derived
// again from the id by the outgoing-message reactor).
func newMailToken(m *mailtoken.Minter, p mailtoken.Purpose, userID uuid.UUID) (uuid.UUID, user.Digest, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, user.Digest{}, fmt.Errorf("commands: token id: %w", err)
	}
	return id, user.Digest(m.Mint(p, userID, id).Digest()), nil
}

// parseMailToken decodes a mailed token; a malformed one is
// user.ErrInvalidToken, like any other bad token.
func parseMailToken(raw string) (mailtoken.Token, error) {
	t, err := mailtoken.Parse(raw)
	if err != nil {
		return mailtoken.Token{}, user.ErrInvalidToken
	}
	return t, nil
}

// registeredHolder finds the registered user holding email (false when
// none), reading the same streams whether or not there is one, so that an
// anonymous request for an unknown address costs what a known one does.
func registeredHolder(ctx context.Context, res *Repository[*user.EmailReservation], users *Repository[*user.User], key []byte, email string) (*user.User, bool, error) {
	holder, held, err := emailHolder(ctx, res, key, email)
	if err != nil {
		return nil, false, err
	}
	stream := decoyStream
	if held {
		stream = user.StreamName(holder)
	}
	u, err := users.Load(ctx, stream)
	if err != nil {
		return nil, false, err
	}
	return u, held && u.Registered(), nil
}

func nowOf(clock func() time.Time) time.Time {
	if clock != nil {
		return clock()
	}
	return time.Now()
}
