package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

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
type RequestPasswordResetHandler struct{ *MailedLinks }

// Handle requests the link.
func (h *RequestPasswordResetHandler) Handle(ctx context.Context, cmd RequestPasswordReset) error {
	return h.request(ctx, cmd.Email, cmd.Meta, mailtoken.PasswordReset, func(*user.User) bool { return true },
		func(u *user.User, id uuid.UUID, d user.Digest, now time.Time) error {
			return u.RequestPasswordReset(id, d, now)
		})
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
	tok, digest, u, err := loadByMailToken(ctx, h.Users, cmd.Token)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	stream := user.StreamName(tok.UserID)
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
		return &user.InvalidInputError{Field: field, Message: pe.Message}
	}
	return err
}
