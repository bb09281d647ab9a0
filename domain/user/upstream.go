package user

import (
	"errors"
	"time"

	"github.com/google/uuid"
)

// Events of sign-in with an upstream provider (OIDC or GitHub, issue 19).
// The links themselves are ExternalIdentityLinked, as for the external
// auth API: one way to link, whichever provider.
const (
	// EventExternalIdentityUnlinked is on the user stream.
	EventExternalIdentityUnlinked = "user.external_identity_unlinked.v1"
	// EventExternalSignedIn is on the user stream: a sign-in through an
	// upstream provider resolved to this user.
	EventExternalSignedIn = "user.external_signed_in.v1"
	// EventExternalIdentityReleased is on the identity's reservation
	// stream: the identity may be linked again (to anyone).
	EventExternalIdentityReleased = "external_identity.released.v1"
	// EventExternalSignInRefused is on the identity's reservation stream:
	// a sign-in or a link of that identity was refused. The stream is an
	// HMAC of the provider and subject, so a refusal for an address
	// without an account puts no address in the log.
	EventExternalSignInRefused = "external_identity.sign_in_refused.v1"
)

// ErrLastSignInMethod: unlinking would leave the account with no way to
// sign in (no local password and no other linked identity).
var ErrLastSignInMethod = errors.New("user: the last way to sign in cannot be removed")

// ErrNotLinked: the user has no identity at that provider.
var ErrNotLinked = errors.New("user: not linked to that provider")

// ExternalIdentityUnlinked removes the user's identity at Provider.
type ExternalIdentityUnlinked struct {
	UserID         uuid.UUID `json:"user_id"`
	Provider       string    `json:"provider"`
	ExternalUserID string    `json:"external_user_id"`
	UnlinkedAt     time.Time `json:"unlinked_at"`
}

// ExternalSignedIn records a sign-in through an upstream provider, before
// its session starts (the session's own event follows at the exchange of
// the one-time code). It never holds a provider token.
type ExternalSignedIn struct {
	UserID         uuid.UUID `json:"user_id"`
	Provider       string    `json:"provider"`
	ExternalUserID string    `json:"external_user_id"`
	SignedInAt     time.Time `json:"signed_in_at"`
}

// ExternalIdentityReleased frees an identity's reservation stream.
type ExternalIdentityReleased struct {
	UserID     uuid.UUID `json:"user_id"`
	ReleasedAt time.Time `json:"released_at"`
}

// Refusal reasons of ExternalSignInRefused. They are data in the log.
const (
	RefusedEmailUnverified  = "email_unverified"
	RefusedNoAccount        = "no_account"
	RefusedIdentityConflict = "identity_conflict"
	RefusedWrongPassword    = "wrong_password"
	RefusedNotAllowed       = "not_allowed"
)

// ExternalSignInRefused records a refused sign-in or link of the identity
// named by its stream. UserID is the local account the attempt aimed at
// (the holder of the provider's address, or the caller linking), nil when
// none; Reason is one of the Refused* values.
type ExternalSignInRefused struct {
	Provider       string     `json:"provider"`
	ExternalUserID string     `json:"external_user_id"`
	UserID         *uuid.UUID `json:"user_id,omitempty"`
	Reason         string     `json:"reason"`
	RefusedAt      time.Time  `json:"refused_at"`
}

func (ExternalIdentityUnlinked) EventName() string { return EventExternalIdentityUnlinked }
func (ExternalSignedIn) EventName() string         { return EventExternalSignedIn }
func (ExternalIdentityReleased) EventName() string { return EventExternalIdentityReleased }
func (ExternalSignInRefused) EventName() string    { return EventExternalSignInRefused }

// ExternalIdentities lists the user's linked identities.
func (u *User) ExternalIdentities() []ExternalIdentity {
	out := make([]ExternalIdentity, 0, len(u.external))
	for _, x := range u.external {
		out = append(out, x)
	}
	return out
}

// RecordExternalSignIn records a sign-in of the user through x, which must
// be linked.
func (u *User) RecordExternalSignIn(x ExternalIdentity, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if cur, ok := u.external[x.Provider]; !ok || cur.ExternalUserID != x.ExternalUserID {
		return ErrNotLinked
	}
	u.record(ExternalSignedIn{UserID: u.id, Provider: x.Provider, ExternalUserID: x.ExternalUserID, SignedInAt: now.UTC()})
	return nil
}

// UnlinkExternalIdentity removes the identity at provider. passwordsOn
// says whether a local password signs in at all (AUTHLEDGER_LOCAL_PASSWORDS):
// with it off, or without a password, the user must keep another identity.
func (u *User) UnlinkExternalIdentity(provider string, passwordsOn bool, now time.Time) (ExternalIdentity, error) {
	if !u.registered {
		return ExternalIdentity{}, ErrNotRegistered
	}
	x, ok := u.external[provider]
	if !ok {
		return ExternalIdentity{}, ErrNotLinked
	}
	if (!passwordsOn || !u.HasPassword()) && len(u.external) < 2 {
		return ExternalIdentity{}, ErrLastSignInMethod
	}
	u.record(ExternalIdentityUnlinked{UserID: u.id, Provider: provider, ExternalUserID: x.ExternalUserID, UnlinkedAt: now.UTC()})
	return x, nil
}

// Release frees the identity held by userID. Not held (a retried unlink),
// it records nothing; held by another user, ErrExternalIdentityConflict.
func (r *ExternalIdentityReservation) Release(userID uuid.UUID, now time.Time) error {
	if !r.held {
		return nil
	}
	if r.holder != userID {
		return ErrExternalIdentityConflict
	}
	r.record(ExternalIdentityReleased{UserID: userID, ReleasedAt: now.UTC()})
	return nil
}

// Refuse records a refused sign-in of the identity (see
// ExternalSignInRefused).
func (r *ExternalIdentityReservation) Refuse(provider, externalUserID string, target *uuid.UUID, reason string, now time.Time) {
	r.record(ExternalSignInRefused{Provider: provider, ExternalUserID: externalUserID, UserID: target, Reason: reason, RefusedAt: now.UTC()})
}
