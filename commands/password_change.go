package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// ChangePassword is a signed-in user choosing a new password.
type ChangePassword struct {
	UserID uuid.UUID
	// SessionID is the caller's session, which stays open; the
	// sessionclaims policy ends every other.
	SessionID       uuid.UUID
	CurrentPassword string
	NewPassword     string
	Meta            Meta
}

// ChangePasswordHandler checks the current password (a wrong one is a 400
// on current_password: the caller is signed in, so nothing is revealed;
// guesses are held by the route's rate limit), the policy, hashes, and
// appends PasswordChanged naming the session to keep.
type ChangePasswordHandler struct {
	Users  *Repository[*user.User]
	Hasher *password.Hasher
	Policy password.Policy
	Now    func() time.Time
}

// Handle changes the password.
func (h *ChangePasswordHandler) Handle(ctx context.Context, cmd ChangePassword) (eventstore.AppendResult, error) {
	now := nowOf(h.Now)
	u, err := h.Users.Load(ctx, user.StreamName(cmd.UserID))
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if !u.Registered() {
		return eventstore.AppendResult{}, ErrUserNotFound
	}
	ok := false
	if u.HasPassword() {
		if ok, err = h.Hasher.Verify(ctx, cmd.CurrentPassword, u.PasswordHash()); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("commands: verify password: %w", err)
		}
	}
	if !ok {
		return eventstore.AppendResult{}, &user.InvalidInputError{Field: "current_password", Message: "is not the account's password"}
	}
	if err := h.Policy.Check(cmd.NewPassword, u.Email()); err != nil {
		return eventstore.AppendResult{}, renameField(err, "new_password")
	}
	hash, err := h.Hasher.Hash(ctx, cmd.NewPassword)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("commands: hash password: %w", err)
	}
	return h.Users.Update(ctx, user.StreamName(cmd.UserID), cmd.Meta, func(u *user.User) error {
		return u.ChangePasswordKeeping(hash, cmd.SessionID, now)
	})
}
