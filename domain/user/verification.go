package user

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"time"

	"github.com/google/uuid"
)

// Event names of email verification, password reset and account notices.
// They are data in the log: never change one.
const (
	EventEmailVerificationRequested = "user.email_verification_requested.v1"
	EventEmailVerified              = "user.email_verified.v1"
	EventEmailChanged               = "user.email_changed.v1"
	EventPasswordResetRequested     = "user.password_reset_requested.v1"
	EventRegistrationAttempted      = "user.registration_attempted.v1"
)

// Lifetimes of the tokens mailed to a user.
const (
	// VerificationTTL is how long an email-verification link works.
	VerificationTTL = 24 * time.Hour
	// ResetTTL is how long a password-reset link works.
	ResetTTL = 30 * time.Minute
)

// Reasons of PasswordChanged.
const (
	// PasswordReasonChanged: the user chose a new password, proving the
	// current one (POST /v1/me/password).
	PasswordReasonChanged = "changed"
	// PasswordReasonReset: the user set one through a mailed reset link.
	PasswordReasonReset = "reset"
)

// ErrInvalidToken is the one answer to a mailed token that is unknown,
// another user's, already used, superseded or expired: the caller learns
// nothing about which.
var ErrInvalidToken = errors.New("user: invalid or expired token")

// Digest is the SHA-256 digest of a mailed token's secret, the only form
// of it the log holds. It marshals as lower-case hex.
type Digest [32]byte

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d[:])), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(d) {
		return errors.New("user: digest must be 64 hex digits")
	}
	_, err := hex.Decode(d[:], b)
	return err
}

// EmailVerificationRequested records a verification link mailed to Email:
// the user's own address (at registration, or a resend) or the new one of
// an address change, which takes effect only once verified. The log holds
// the token's digest; the mail holds the token (derived from TokenID by
// the sender, never stored).
type EmailVerificationRequested struct {
	UserID      uuid.UUID `json:"user_id"`
	TokenID     uuid.UUID `json:"token_id"`
	Digest      Digest    `json:"digest"`
	Email       string    `json:"email"`
	RequestedAt time.Time `json:"requested_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// EmailVerified records the user proving control of their current
// address with the token TokenID.
type EmailVerified struct {
	UserID     uuid.UUID `json:"user_id"`
	TokenID    uuid.UUID `json:"token_id"`
	Email      string    `json:"email"`
	VerifiedAt time.Time `json:"verified_at"`
}

// EmailChanged records an address change taking effect: the new address
// verified with TokenID and reserved for the user (its reservation stream
// appended first); the old one's reservation is released after.
type EmailChanged struct {
	UserID    uuid.UUID `json:"user_id"`
	TokenID   uuid.UUID `json:"token_id"`
	OldEmail  string    `json:"old_email"`
	Email     string    `json:"email"`
	ChangedAt time.Time `json:"changed_at"`
}

// PasswordResetRequested records a reset link mailed to the user's
// address. Only the latest request's token works.
type PasswordResetRequested struct {
	UserID      uuid.UUID `json:"user_id"`
	TokenID     uuid.UUID `json:"token_id"`
	Digest      Digest    `json:"digest"`
	RequestedAt time.Time `json:"requested_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// RegistrationAttempted records someone registering the user's address
// while enumeration-safe registration is on: the answer was the same as
// for a new address, and the owner is told by mail instead.
type RegistrationAttempted struct {
	UserID      uuid.UUID `json:"user_id"`
	AttemptedAt time.Time `json:"attempted_at"`
}

func (EmailVerificationRequested) EventName() string { return EventEmailVerificationRequested }
func (EmailVerified) EventName() string              { return EventEmailVerified }
func (EmailChanged) EventName() string               { return EventEmailChanged }
func (PasswordResetRequested) EventName() string     { return EventPasswordResetRequested }
func (RegistrationAttempted) EventName() string      { return EventRegistrationAttempted }

// pendingToken is an outstanding mailed token.
type pendingToken struct {
	id      uuid.UUID
	digest  Digest
	email   string
	expires time.Time
}

// matches compares in constant time and checks the expiry.
func (p *pendingToken) matches(id uuid.UUID, d Digest, now time.Time) bool {
	return p != nil && p.id == id && subtle.ConstantTimeCompare(p.digest[:], d[:]) == 1 && now.Before(p.expires)
}

// EmailVerified reports whether the current address was verified.
func (u *User) EmailVerified() bool { return u.emailVerified }

// RequestEmailVerification records a verification link for email: the
// current address (which must not be verified already: nothing is
// recorded then) or a new one (an address change). The newest request
// for an address supersedes the older ones.
func (u *User) RequestEmailVerification(tokenID uuid.UUID, digest Digest, email string, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if e == u.email && u.emailVerified {
		return nil
	}
	u.record(EmailVerificationRequested{UserID: u.id, TokenID: tokenID, Digest: digest, Email: e,
		RequestedAt: now.UTC(), ExpiresAt: now.Add(VerificationTTL).UTC()})
	return nil
}

// VerificationTarget is the address the pending token tokenID verifies,
// after checking it: ErrInvalidToken unless it matches and is unexpired.
func (u *User) VerificationTarget(tokenID uuid.UUID, digest Digest, now time.Time) (string, error) {
	if !u.registered {
		return "", ErrInvalidToken
	}
	p := u.verifications[tokenID]
	if !p.matches(tokenID, digest, now) {
		return "", ErrInvalidToken
	}
	return p.email, nil
}

// VerifyEmail uses the token: EmailVerified for the current address,
// EmailChanged for a new one (whose reservation the caller holds already).
func (u *User) VerifyEmail(tokenID uuid.UUID, digest Digest, now time.Time) error {
	target, err := u.VerificationTarget(tokenID, digest, now)
	if err != nil {
		return err
	}
	if target == u.email {
		u.record(EmailVerified{UserID: u.id, TokenID: tokenID, Email: target, VerifiedAt: now.UTC()})
		return nil
	}
	u.record(EmailChanged{UserID: u.id, TokenID: tokenID, OldEmail: u.email, Email: target, ChangedAt: now.UTC()})
	return nil
}

// RequestPasswordReset records a reset link; it supersedes any earlier.
func (u *User) RequestPasswordReset(tokenID uuid.UUID, digest Digest, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	u.record(PasswordResetRequested{UserID: u.id, TokenID: tokenID, Digest: digest,
		RequestedAt: now.UTC(), ExpiresAt: now.Add(ResetTTL).UTC()})
	return nil
}

// CheckResetToken is nil when tokenID is the pending, unexpired reset
// token with digest, else ErrInvalidToken.
func (u *User) CheckResetToken(tokenID uuid.UUID, digest Digest, now time.Time) error {
	if !u.registered || !u.reset.matches(tokenID, digest, now) {
		return ErrInvalidToken
	}
	return nil
}

// ResetPassword sets passwordHash through the reset token, which it uses
// up; every reset token is void after.
func (u *User) ResetPassword(tokenID uuid.UUID, digest Digest, passwordHash string, now time.Time) error {
	if err := u.CheckResetToken(tokenID, digest, now); err != nil {
		return err
	}
	if !isPHC(passwordHash) {
		return errors.New("user: password hash is not a PHC string")
	}
	u.record(PasswordChanged{UserID: u.id, PasswordHash: passwordHash, ChangedAt: now.UTC(), Reason: PasswordReasonReset, TokenID: &tokenID})
	return nil
}

// ChangePasswordKeeping records a password the user chose, proving the
// current one (checked outside): every session but keep is to end.
func (u *User) ChangePasswordKeeping(passwordHash string, keep uuid.UUID, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if !isPHC(passwordHash) {
		return errors.New("user: password hash is not a PHC string")
	}
	e := PasswordChanged{UserID: u.id, PasswordHash: passwordHash, ChangedAt: now.UTC(), Reason: PasswordReasonChanged}
	if keep != uuid.Nil {
		e.KeepSession = &keep
	}
	u.record(e)
	return nil
}

// RecordRegistrationAttempt records someone registering the user's
// address (enumeration-safe mode).
func (u *User) RecordRegistrationAttempt(now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	u.record(RegistrationAttempted{UserID: u.id, AttemptedAt: now.UTC()})
	return nil
}

// applyVerification folds the events of this file.
func (u *User) applyVerification(e any) {
	switch e := e.(type) {
	case EmailVerificationRequested:
		if u.verifications == nil {
			u.verifications = map[uuid.UUID]*pendingToken{}
		}
		// The newest request for an address supersedes the older ones.
		for id, p := range u.verifications {
			if p.email == e.Email {
				delete(u.verifications, id)
			}
		}
		u.verifications[e.TokenID] = &pendingToken{id: e.TokenID, digest: e.Digest, email: e.Email, expires: e.ExpiresAt}
	case EmailVerified:
		u.emailVerified = true
		delete(u.verifications, e.TokenID)
	case EmailChanged:
		u.email, u.emailVerified = e.Email, true
		delete(u.verifications, e.TokenID)
	case PasswordResetRequested:
		u.reset = &pendingToken{id: e.TokenID, digest: e.Digest, expires: e.ExpiresAt}
	case PasswordChanged:
		// Any new password, reset or chosen, voids the reset link.
		u.reset = nil
	case RegistrationAttempted:
	}
}
