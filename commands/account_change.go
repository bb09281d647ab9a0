package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// The account changes an administrator makes.
const (
	AccountLock    = "lock"
	AccountUnlock  = "unlock"
	AccountDisable = "disable"
	AccountEnable  = "enable"
)

// ChangeAccount locks, unlocks, disables or enables a user's account.
type ChangeAccount struct {
	UserID uuid.UUID
	// Op is one of AccountLock, AccountUnlock, AccountDisable,
	// AccountEnable.
	Op     string
	Reason string
	Meta   Meta
}

// ChangeAccountHandler appends to the user's stream. Disabling also ends
// every session of the user (a cutoff at the moment of the command,
// appended after the user's stream: a retry of a disable that failed
// between the two appends the cutoff).
type ChangeAccountHandler struct {
	Users  *Repository[*user.User]
	Revoke *RevokeSessionsBeforeHandler
	Now    func() time.Time
}

// Handle changes the account. The result is the last position written
// (zero when nothing changed).
func (h *ChangeAccountHandler) Handle(ctx context.Context, cmd ChangeAccount) (eventstore.AppendResult, error) {
	now := h.Now()
	res, err := h.Users.Update(ctx, user.StreamName(cmd.UserID), cmd.Meta, func(u *user.User) error {
		if !u.Registered() {
			return ErrUserNotFound
		}
		switch cmd.Op {
		case AccountLock:
			return u.LockByAdmin(cmd.Reason, now)
		case AccountUnlock:
			return u.Unlock(now)
		case AccountDisable:
			return u.Disable(cmd.Reason, now)
		case AccountEnable:
			return u.Enable(now)
		}
		return fmt.Errorf("commands: unknown account change %q", cmd.Op)
	})
	if err != nil || cmd.Op != AccountDisable {
		return res, err
	}
	reason := "account disabled"
	if cmd.Reason != "" {
		reason += ": " + cmd.Reason
	}
	return h.Revoke.Handle(ctx, RevokeSessionsBefore{Before: now, UserID: cmd.UserID, Reason: reason, Meta: cmd.Meta})
}

// Exists is nil when userID is a registered user, else ErrUserNotFound.
func (h *ChangeAccountHandler) Exists(ctx context.Context, userID uuid.UUID) error {
	u, err := h.Users.Load(ctx, user.StreamName(userID))
	if err != nil {
		return err
	}
	if !u.Registered() {
		return ErrUserNotFound
	}
	return nil
}
