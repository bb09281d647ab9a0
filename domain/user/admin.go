package user

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// Event names of an administrator's actions on an account.
const (
	EventLockedByAdmin = "user.locked_by_admin.v1"
	EventDisabled      = "user.disabled.v1"
	EventEnabled       = "user.enabled.v1"
)

var (
	// ErrAccountLocked: an administrator locked the account (LockByAdmin);
	// logins are refused until Unlock.
	ErrAccountLocked = errors.New("user: account locked by an administrator")
	// ErrAccountDisabled: the account is disabled (Disable); logins and
	// refreshes are refused until Enable.
	ErrAccountDisabled = errors.New("user: account disabled")
)

// MaxReasonLength bounds the reason an administrator gives, in code
// points.
const MaxReasonLength = 500

// LockedByAdmin records an administrator locking the account: logins are
// refused until Unlocked. Sessions already open go on (force a logout to
// end them). Unlike Locked (the former automatic lockout) it locks.
type LockedByAdmin struct {
	UserID   uuid.UUID `json:"user_id"`
	Reason   string    `json:"reason,omitempty"`
	LockedAt time.Time `json:"locked_at"`
}

// Disabled records the account being disabled: logins and refreshes are
// refused until Enabled, and the command that disables ends every
// session.
type Disabled struct {
	UserID     uuid.UUID `json:"user_id"`
	Reason     string    `json:"reason,omitempty"`
	DisabledAt time.Time `json:"disabled_at"`
}

// Enabled lifts Disabled.
type Enabled struct {
	UserID    uuid.UUID `json:"user_id"`
	EnabledAt time.Time `json:"enabled_at"`
}

func (LockedByAdmin) EventName() string { return EventLockedByAdmin }
func (Disabled) EventName() string      { return EventDisabled }
func (Enabled) EventName() string       { return EventEnabled }

// LockedByAdmin reports whether an administrator locked the account.
func (u *User) LockedByAdmin() bool { return u.lockedByAdmin }

// Disabled reports whether the account is disabled.
func (u *User) Disabled() bool { return u.disabled }

// CanLogIn is nil unless the account is disabled (ErrAccountDisabled) or
// locked (ErrAccountLocked). A login asks it only after the password was
// verified, so that it tells nothing to someone without the password.
func (u *User) CanLogIn() error {
	switch {
	case u.erased:
		return ErrErased
	case u.disabled:
		return ErrAccountDisabled
	case u.lockedByAdmin:
		return ErrAccountLocked
	}
	return nil
}

// LockByAdmin locks the account; a locked account records nothing.
func (u *User) LockByAdmin(reason string, now time.Time) error {
	reason, err := u.adminReason(reason)
	if err != nil || u.lockedByAdmin {
		return err
	}
	u.record(LockedByAdmin{UserID: u.id, Reason: reason, LockedAt: now.UTC()})
	return nil
}

// Disable disables the account; a disabled account records nothing.
func (u *User) Disable(reason string, now time.Time) error {
	reason, err := u.adminReason(reason)
	if err != nil || u.disabled {
		return err
	}
	u.record(Disabled{UserID: u.id, Reason: reason, DisabledAt: now.UTC()})
	return nil
}

// Enable enables a disabled account; an enabled one records nothing.
func (u *User) Enable(now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if !u.disabled {
		return nil
	}
	u.record(Enabled{UserID: u.id, EnabledAt: now.UTC()})
	return nil
}

func (u *User) adminReason(reason string) (string, error) {
	if !u.registered {
		return "", ErrNotRegistered
	}
	reason = strings.TrimSpace(reason)
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > MaxReasonLength {
		return "", invalid("reason", "must be valid UTF-8 and at most 500 characters long")
	}
	return reason, nil
}

func (u *User) applyAdmin(e events.Event) {
	switch e.(type) {
	case LockedByAdmin:
		u.lockedByAdmin = true
	case Disabled:
		u.disabled = true
	case Enabled:
		u.disabled = false
	}
}
