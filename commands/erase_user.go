package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// EraseUser erases an account by crypto-shredding (ADR 0034). The user
// asking for their own erasure re-authenticates with Password; an
// administrator (AsAdmin) does not.
type EraseUser struct {
	UserID uuid.UUID
	// By is the requester: UserID itself, or an administrator.
	By       uuid.UUID
	AsAdmin  bool
	Password string
	Meta     Meta
}

// DataKeyEraser destroys a user's data key (auth/datakeys.Keyring).
type DataKeyEraser interface {
	Erase(ctx context.Context, user uuid.UUID) error
}

// EraseUserHandler erases in an order that a retry completes: it deletes
// the user's tasks that still hold files (the blob_release policy removes
// the files), releases the address's reservation, destroys the data key,
// appends user.erased.v1, and ends every session of the user. A retry
// after any step finds the earlier ones done (the key gone, the address
// already released, the tasks deleted) and carries on.
type EraseUserHandler struct {
	Users          *Repository[*user.User]
	Reservations   *Repository[*user.EmailReservation]
	ReservationKey []byte
	Hasher         *password.Hasher
	Keys           DataKeyEraser
	Revoke         *RevokeSessionsBeforeHandler
	// Quotas and DeleteTask find and delete the user's stored tasks.
	Quotas     *Repository[*task.Quota]
	DeleteTask *DeleteTaskHandler
	Now        func() time.Time
}

// Handle erases. A wrong or missing password (not AsAdmin) is an invalid
// input on password; an unknown user ErrUserNotFound.
func (h *EraseUserHandler) Handle(ctx context.Context, cmd EraseUser) (eventstore.AppendResult, error) {
	now := nowOf(h.Now)
	u, err := h.Users.Load(ctx, user.StreamName(cmd.UserID))
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if !u.Registered() {
		return eventstore.AppendResult{}, ErrUserNotFound
	}
	if !cmd.AsAdmin {
		ok := false
		if u.HasPassword() && cmd.Password != "" {
			if ok, err = h.Hasher.Verify(ctx, cmd.Password, u.PasswordHash()); err != nil {
				return eventstore.AppendResult{}, fmt.Errorf("commands: verify password: %w", err)
			}
		}
		if !ok {
			return eventstore.AppendResult{}, &user.InvalidInputError{Field: "password", Message: "is not the account's password"}
		}
	}
	if err := h.deleteTasks(ctx, cmd); err != nil {
		return eventstore.AppendResult{}, err
	}
	// The address is readable until the key goes: release it first, so
	// that it can be registered again.
	if email := u.Email(); email != "" && !u.ServiceAccount() {
		_, err := h.Reservations.Update(ctx, user.EmailReservationStream(h.ReservationKey, email), cmd.Meta, func(r *user.EmailReservation) error {
			if holder, held := r.Holder(); !held || holder != cmd.UserID {
				return nil
			}
			return r.Release(cmd.UserID, now)
		})
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("commands: release the address: %w", err)
		}
	}
	if err := h.Keys.Erase(ctx, cmd.UserID); err != nil {
		return eventstore.AppendResult{}, err
	}
	res, err := h.Users.Update(ctx, user.StreamName(cmd.UserID), cmd.Meta, func(u *user.User) error {
		return u.Erase(cmd.By, cmd.AsAdmin, now)
	})
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	cut, err := h.Revoke.Handle(ctx, RevokeSessionsBefore{Before: now, UserID: cmd.UserID, Reason: "account erased", Meta: cmd.Meta})
	if err != nil {
		return res, err
	}
	if cut.Position.IsZero() {
		return res, nil
	}
	return cut, nil
}

// deleteTasks deletes every task of the user whose files still count on
// their quota (those not yet deleted or expired).
func (h *EraseUserHandler) deleteTasks(ctx context.Context, cmd EraseUser) error {
	q, err := h.Quotas.Load(ctx, task.QuotaStream(cmd.UserID))
	if err != nil {
		return err
	}
	for _, r := range q.Reservations() {
		if !r.Stored {
			continue
		}
		_, err := h.DeleteTask.Handle(ctx, DeleteTask{TaskID: r.TaskID, UserID: cmd.By, AsAdmin: cmd.AsAdmin || cmd.By != cmd.UserID, Meta: cmd.Meta})
		if err != nil && !errors.Is(err, task.ErrNotFound) {
			return fmt.Errorf("commands: delete task %s: %w", r.TaskID, err)
		}
	}
	return nil
}
