package user

import (
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// Event names. They are data in the log: never change one; add a .v2 type
// and an upcaster instead.
const (
	EventRegistered           = "user.registered.v1"
	EventPasswordChanged      = "user.password_changed.v1"
	EventPasswordRehashed     = "user.password_rehashed.v1"
	EventLoginFailed          = "user.login_failed.v1"
	EventLoginFailuresCleared = "user.login_failures_cleared.v1"
	EventLocked               = "user.locked.v1"
	EventUnlocked             = "user.unlocked.v1"
	EventRoleGranted          = "user.role_granted.v1"
	EventRoleRevoked          = "user.role_revoked.v1"
	EventDisplayNameChanged   = "user.display_name_changed.v1"
	EventEmailReserved        = "email.reserved.v1"
	EventEmailReleased        = "email.released.v1"
	// EventExternalIdentityLinked is on the user stream.
	EventExternalIdentityLinked = "user.external_identity_linked.v1"
	// EventExternalIdentityReserved is on the external identity's
	// reservation stream (ExternalIdentityStream).
	EventExternalIdentityReserved = "external_identity.reserved.v1"
)

// Registered starts a user stream. PasswordHash is an argon2id PHC string,
// never a password; it is absent for a user created by an external login
// (RegisterExternal), whom the local password path refuses. Email is
// normalised (see NormalizeEmail).
type Registered struct {
	UserID       uuid.UUID `json:"user_id"`
	Email        string    `json:"email"`
	DisplayName  string    `json:"display_name"`
	PasswordHash string    `json:"password_hash,omitempty"`
	Roles        []string  `json:"roles"`
	RegisteredAt time.Time `json:"registered_at"`
	// ServiceAccount marks an account for a machine (RegisterServiceAccount):
	// no email, no password, so no login; it acts through its API keys
	// alone. Absent (false) for every person's account.
	ServiceAccount bool `json:"service_account,omitempty"`
}

// PasswordChanged records a new password chosen by the user (or reset). It
// is a reason to revoke the user's other sessions; PasswordRehashed is not.
//
// Reason is PasswordReasonChanged or PasswordReasonReset (absent in events
// recorded before resets existed). TokenID is the reset token a reset
// used up. KeepSession is the session a change was made from, the one
// that stays open (the sessionclaims policy ends the others); a reset
// keeps none (its command ends every session at once).
type PasswordChanged struct {
	UserID       uuid.UUID  `json:"user_id"`
	PasswordHash string     `json:"password_hash"`
	ChangedAt    time.Time  `json:"changed_at"`
	Reason       string     `json:"reason,omitempty"`
	TokenID      *uuid.UUID `json:"token_id,omitempty"`
	KeepSession  *uuid.UUID `json:"keep_session,omitempty"`
}

// PasswordRehashed records the same password hashed again under new
// parameters, at a successful login (the password did not change).
type PasswordRehashed struct {
	UserID       uuid.UUID `json:"user_id"`
	PasswordHash string    `json:"password_hash"`
	RehashedAt   time.Time `json:"rehashed_at"`
}

// LoginFailed records one wrong password for an existing account, from an
// attempt the throttle let through. The time and the source are in the
// data (not only in the metadata) because the throttle folds them. Source
// is the client's network (Source), Device the known device the attempt
// came from ("" for none). Both are absent in events recorded before the
// throttle counted per source: those count against the empty source.
//
// Method is the login method that refused it ("password" for the local
// hash, "external" for the external auth API); absent in events recorded
// before it was added, which were all local.
type LoginFailed struct {
	UserID   uuid.UUID `json:"user_id"`
	FailedAt time.Time `json:"failed_at"`
	Source   string    `json:"source,omitempty"`
	Device   string    `json:"device,omitempty"`
	Method   string    `json:"method,omitempty"`
}

// LoginFailuresCleared records a successful login from a source that had
// failures: the throttle forgets that source's failures (and only that
// source's: a success from the owner's laptop does not give a stranger's
// address its free attempts back). It is appended only when there is
// something to clear, so successful logins stay off the user stream.
type LoginFailuresCleared struct {
	UserID    uuid.UUID `json:"user_id"`
	Source    string    `json:"source,omitempty"`
	Device    string    `json:"device,omitempty"`
	ClearedAt time.Time `json:"cleared_at"`
}

// Locked records a lockout of the former policy, which locked the account
// itself after five failures. It is no longer recorded (the throttle
// replaced it, docs/login-throttling.md); in old streams it still forgets the
// failures before it, and locks nothing.
type Locked struct {
	UserID      uuid.UUID `json:"user_id"`
	LockedAt    time.Time `json:"locked_at"`
	LockedUntil time.Time `json:"locked_until"`
	Lockout     int       `json:"lockout"`
}

// Unlocked records an administrator clearing every failure the throttle
// counts for the account (it once lifted a lockout early).
type Unlocked struct {
	UserID     uuid.UUID `json:"user_id"`
	UnlockedAt time.Time `json:"unlocked_at"`
}

// RoleGranted adds a role.
//
// ExpiresAt, when set, is when the grant stops counting (nobody acts
// then: authorization compares it with the clock). A grant of a role
// already held replaces its expiry. Absent in grants recorded before
// grants could expire, which never expire.
type RoleGranted struct {
	UserID    uuid.UUID  `json:"user_id"`
	Role      string     `json:"role"`
	GrantedAt time.Time  `json:"granted_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// RoleRevoked removes a role.
type RoleRevoked struct {
	UserID    uuid.UUID `json:"user_id"`
	Role      string    `json:"role"`
	RevokedAt time.Time `json:"revoked_at"`
}

// DisplayNameChanged sets a new display name.
type DisplayNameChanged struct {
	UserID      uuid.UUID `json:"user_id"`
	DisplayName string    `json:"display_name"`
	ChangedAt   time.Time `json:"changed_at"`
}

// EmailReserved claims an address for a user, on the reservation stream
// (EmailReservationStream). It holds no address: the stream name is an HMAC
// of it, and the address itself lives only in the user stream.
type EmailReserved struct {
	UserID     uuid.UUID `json:"user_id"`
	ReservedAt time.Time `json:"reserved_at"`
}

// EmailReleased frees an address (account deleted, address changed), so
// the reservation stream can be claimed again at its current revision.
type EmailReleased struct {
	UserID     uuid.UUID `json:"user_id"`
	ReleasedAt time.Time `json:"released_at"`
}

// ExternalIdentityLinked links the user to an account of an external
// identity provider: logins through that provider find the user by
// ExternalUserID (through ExternalIdentityStream, reserved before this is
// appended). ProviderEmail is the provider's address of the user when
// linked, kept for the profile and for operators.
type ExternalIdentityLinked struct {
	UserID         uuid.UUID `json:"user_id"`
	Provider       string    `json:"provider"`
	ExternalUserID string    `json:"external_user_id"`
	ProviderEmail  string    `json:"provider_email,omitempty"`
	LinkedAt       time.Time `json:"linked_at"`
}

// ExternalIdentityReserved claims an external identity for a user, on its
// reservation stream. It holds neither the provider nor the id: the
// stream name is an HMAC of them, and they live in the user stream.
type ExternalIdentityReserved struct {
	UserID     uuid.UUID `json:"user_id"`
	ReservedAt time.Time `json:"reserved_at"`
}

func (Registered) EventName() string           { return EventRegistered }
func (PasswordChanged) EventName() string      { return EventPasswordChanged }
func (PasswordRehashed) EventName() string     { return EventPasswordRehashed }
func (LoginFailed) EventName() string          { return EventLoginFailed }
func (LoginFailuresCleared) EventName() string { return EventLoginFailuresCleared }
func (Locked) EventName() string               { return EventLocked }
func (Unlocked) EventName() string             { return EventUnlocked }
func (RoleGranted) EventName() string          { return EventRoleGranted }
func (RoleRevoked) EventName() string          { return EventRoleRevoked }
func (DisplayNameChanged) EventName() string   { return EventDisplayNameChanged }
func (EmailReserved) EventName() string        { return EventEmailReserved }
func (EmailReleased) EventName() string        { return EventEmailReleased }
func (ExternalIdentityLinked) EventName() string {
	return EventExternalIdentityLinked
}
func (ExternalIdentityReserved) EventName() string {
	return EventExternalIdentityReserved
}

// AllEvents lists one zero value of every event type of this package, the
// table RegisterEvents installs. Adding a type means adding it here.
func AllEvents() []events.Event {
	return []events.Event{
		Registered{}, PasswordChanged{}, PasswordRehashed{}, LoginFailed{}, LoginFailuresCleared{}, Locked{}, Unlocked{},
		RoleGranted{}, RoleRevoked{}, DisplayNameChanged{}, EmailReserved{}, EmailReleased{},
		ExternalIdentityLinked{}, ExternalIdentityReserved{},
		ExternalIdentityUnlinked{}, ExternalSignedIn{}, ExternalIdentityReleased{}, ExternalSignInRefused{},
		LockedByAdmin{}, Disabled{}, Enabled{},
		EmailVerificationRequested{}, EmailVerified{}, EmailChanged{}, PasswordResetRequested{}, RegistrationAttempted{},
		Erased{}, TermsAccepted{},
	}
}

// RegisterEvents adds the user and email-reservation events to r, as value
// types (Decode returns values, which is what the aggregates' apply expects).
func RegisterEvents(r *events.Registry) error { return r.Register(AllEvents()...) }
