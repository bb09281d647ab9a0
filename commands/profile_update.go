package commands

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/mailtoken"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// UpdateProfile changes what a user says about themselves. A nil field is
// left as it is.
type UpdateProfile struct {
	UserID      uuid.UUID
	DisplayName *string
	// Email is a new address: a verification link goes to it, and it
	// takes effect once verified (VerifyEmailHandler), never before.
	Email *string
	Meta  Meta
}

// UpdateProfileResult says what the request changed or started.
type UpdateProfileResult struct {
	Position eventstore.Position
	// EmailPending is the address awaiting verification, "" for none.
	EmailPending string
}

// UpdateProfileHandler validates every field at once, then appends to the
// user stream in one append. An address change reserves nothing yet: the
// reservation is taken when the new address is verified, so asking for an
// address (someone else's, or one nobody holds) tells nothing about it.
type UpdateProfileHandler struct {
	Users  *Repository[*user.User]
	Minter *mailtoken.Minter
	Now    func() time.Time
}

// Handle updates.
func (h *UpdateProfileHandler) Handle(ctx context.Context, cmd UpdateProfile) (UpdateProfileResult, error) {
	now := nowOf(h.Now)
	var errs []error
	var email string
	if cmd.DisplayName != nil {
		_, err := user.NormalizeDisplayName(*cmd.DisplayName)
		errs = append(errs, err)
	}
	if cmd.Email != nil {
		var err error
		email, err = user.NormalizeEmail(*cmd.Email)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return UpdateProfileResult{}, err
	}
	id, digest, err := newMailToken(h.Minter, mailtoken.EmailVerification, cmd.UserID)
	if err != nil {
		return UpdateProfileResult{}, err
	}
	var out UpdateProfileResult
	res, err := h.Users.Update(ctx, user.StreamName(cmd.UserID), cmd.Meta, func(u *user.User) error {
		out.EmailPending = ""
		if !u.Registered() {
			return ErrUserNotFound
		}
		if cmd.DisplayName != nil {
			if err := u.ChangeDisplayName(*cmd.DisplayName, now); err != nil {
				return err
			}
		}
		if cmd.Email != nil && email != u.Email() {
			out.EmailPending = email
			return u.RequestEmailVerification(id, digest, email, now)
		}
		return nil
	})
	out.Position = res.Position
	return out, err
}
