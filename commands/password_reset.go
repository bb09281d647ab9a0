package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/authledger/authledger/auth/mailtoken"
	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// RequestPasswordReset mails a reset link to the owner of Email.
type RequestPasswordReset struct {
	Email string
	Meta  Meta
}

// RequestPasswordResetHandler records a reset link for a registered user
// (the outgoing-message reactor mails it); for an unknown address it
// records nothing. The HTTP answer is the same either way.
type RequestPasswordResetHandler struct {
	Users          *Repository[*user.User]
	Reservations   *Repository[*user.EmailReservation]
	ReservationKey []byte
	Minter         *mailtoken.Minter
	Now            func() time.Time
}

// Handle requests the link.
func (h *RequestPasswordResetHandler) Handle(ctx context.Context, cmd RequestPasswordReset) error {
	now := nowOf(h.Now)
	u, ok, err := registeredHolder(ctx, h.Reservations, h.Users, h.ReservationKey, cmd.Email)
	if err != nil || !ok {
		return err
	}
	id, digest, err := newMailToken(h.Minter, mailtoken.PasswordReset, u.ID())
	if err != nil {
		return err
	}
	_, err = h.Users.Update(ctx, user.StreamName(u.ID()), cmd.Meta, func(u *user.User) error {
		return u.RequestPasswordReset(id, digest, now)
	})
	return err
}

// ResetPassword sets a new password with a mailed reset token.
type ResetPassword struct {
	Token       string
	NewPassword string
	Meta        Meta
}

// ResetPasswordHandler checks the token and the policy, hashes, appends
// PasswordChanged (reason reset, which uses the token up and tells the
// reactor to notify the user), then ends every session of the user with a
// cutoff. A retry after a failure between the two appends finds the token
// used: the cutoff is lost only if the client never retries, and the new
// password already locks the old sessions out of any new login.
type ResetPasswordHandler struct {
	Users  *Repository[*user.User]
	Hasher *password.Hasher
	Policy password.Policy
	Revoke *RevokeSessionsBeforeHandler
	Now    func() time.Time
}

// Handle resets. A bad token is user.ErrInvalidToken, checked before the
// policy (a policy message must not confirm a token); a weak password is a
// *password.PolicyError with nothing written.
func (h *ResetPasswordHandler) Handle(ctx context.Context, cmd ResetPassword) (eventstore.AppendResult, error) {
	now := nowOf(h.Now)
	tok, err := parseMailToken(cmd.Token)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	digest := user.Digest(tok.Digest())
	stream := user.StreamName(tok.UserID)
	u, err := h.Users.Load(ctx, stream)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := u.CheckResetToken(tok.TokenID, digest, now); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := h.Policy.Check(cmd.NewPassword, u.Email()); err != nil {
		return eventstore.AppendResult{}, renameField(err, "new_password")
	}
	hash, err := h.Hasher.Hash(ctx, cmd.NewPassword)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("commands: hash password: %w", err)
	}
	if _, err := h.Users.Update(ctx, stream, cmd.Meta, func(u *user.User) error {
		return u.ResetPassword(tok.TokenID, digest, hash, now)
	}); err != nil {
		return eventstore.AppendResult{}, err
	}
	return h.Revoke.Handle(ctx, RevokeSessionsBefore{Before: now, UserID: tok.UserID, Reason: "password reset", Meta: cmd.Meta})
}

// renameField gives a policy error the field name of the request body
// that carried the password.
func renameField(err error, field string) error {
	var pe *password.PolicyError
	if errors.As(err, &pe) {
		c := *pe
		c.Field = field
		return &user.InvalidInputError{Field: field, Message: c.Message}
	}
	return err
}
