package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/mailtoken"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// VerifyEmail uses a mailed verification token.
type VerifyEmail struct {
	Token string
	Meta  Meta
}

// VerifyEmailHandler verifies the user's address, or completes an address
// change. A change spans three streams, ordered so that a retry with the
// same token completes it: reserve the new address for the user (held by
// the same user: nothing to do; by another registered user:
// user.ErrEmailTaken), append EmailChanged (which uses the token up),
// release the old address. A crash after the reservation leaves the new
// address held for the user while the old one still works; the token
// stays valid, and using it again finishes the change.
type VerifyEmailHandler struct {
	Users          *Repository[*user.User]
	Reservations   *Repository[*user.EmailReservation]
	ReservationKey []byte
	Now            func() time.Time
}

// Handle verifies. Any bad token (malformed, unknown, used, superseded,
// expired) is user.ErrInvalidToken.
func (h *VerifyEmailHandler) Handle(ctx context.Context, cmd VerifyEmail) (eventstore.AppendResult, error) {
	now := nowOf(h.Now)
	tok, digest, u, err := loadByMailToken(ctx, h.Users, cmd.Token)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	stream := user.StreamName(tok.UserID)
	target, err := u.VerificationTarget(tok.TokenID, digest, now)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	old := u.Email()
	if target != old {
		if err := h.reserve(ctx, tok.UserID, target, cmd.Meta, now); err != nil {
			return eventstore.AppendResult{}, err
		}
	}
	res, err := h.Users.Update(ctx, stream, cmd.Meta, func(u *user.User) error { return u.VerifyEmail(tok.TokenID, digest, now) })
	if err != nil || target == old {
		return res, err
	}
	// The old address is free once the change is in the user stream.
	_, err = h.Reservations.Update(ctx, user.EmailReservationStream(h.ReservationKey, old), cmd.Meta, func(r *user.EmailReservation) error {
		if holder, held := r.Holder(); !held || holder != tok.UserID {
			return nil // released already (a retry), or reserved under an older spelling
		}
		return r.Release(tok.UserID, now)
	})
	if err != nil {
		return res, fmt.Errorf("commands: release the old address: %w", err)
	}
	return res, nil
}

// reserve holds email for userID, as registration does: a registered
// holder (under any spelling) is user.ErrEmailTaken; a holder whose user
// stream is missing (a crashed registration) owns nothing yet, and is
// refused too, to keep it completable.
func (h *VerifyEmailHandler) reserve(ctx context.Context, userID uuid.UUID, email string, meta Meta, now time.Time) error {
	stream := user.EmailReservationStream(h.ReservationKey, email)
	taken, err := heldUnderAnotherSpelling(ctx, h.Reservations, h.Users, h.ReservationKey, email, stream)
	if err != nil {
		return err
	}
	if taken {
		return user.ErrEmailTaken
	}
	_, err = h.Reservations.Update(ctx, stream, meta, func(r *user.EmailReservation) error { return r.Reserve(userID, now) })
	return err
}

// RequestEmailVerification mails a new verification link to the owner of
// Email (POST /v1/auth/verify-email/resend).
type RequestEmailVerification struct {
	Email string
	Meta  Meta
}

// RequestEmailVerificationHandler records a new link for a registered,
// unverified address; for an unknown or verified address it records
// nothing, and answers the same.
type RequestEmailVerificationHandler struct{ *MailedLinks }

// Handle requests the link.
func (h *RequestEmailVerificationHandler) Handle(ctx context.Context, cmd RequestEmailVerification) error {
	return h.request(ctx, cmd.Email, cmd.Meta, mailtoken.EmailVerification, func(u *user.User) bool { return !u.EmailVerified() },
		func(u *user.User, id uuid.UUID, d user.Digest, now time.Time) error {
			return u.RequestEmailVerification(id, d, u.Email(), now)
		})
}
