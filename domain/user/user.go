// Package user is the user aggregate and the email reservation that keeps
// addresses unique.
//
// A user stream ("user-<id>") holds registration, password hashes, failed
// logins (which the login throttle folds, lockout.go), and roles. Successful logins are not written here
// (the session stream records them), so the stream stays short. The package
// is pure: it decides which events a command produces and folds events into
// state; time comes in as an argument, hashes are made outside.
//
// Registration spans two streams and is ordered so that a retry completes
// rather than duplicates: choose the user id, reserve the address
// (EmailReservation.Reserve, appended with NoStream, or at the current
// revision after a release), then append Register's events to the user
// stream with NoStream. A retry that finds the reservation already held by
// the same id carries on.
package user

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"

	"github.com/authledger/authledger/events"
)

// StreamPrefix starts every user stream name.
const StreamPrefix = "user-"

// StreamName is the user's stream.
func StreamName(id uuid.UUID) string { return StreamPrefix + id.String() }

// The roles the service itself gives meaning to. Any other valid role
// (ValidateRole) may be granted; access tokens carry them all.
const (
	// DefaultRole is granted at registration.
	DefaultRole = "user"
	// RoleAdmin may read and delete any user's task (each such read is
	// recorded) and read the whole audit trail.
	RoleAdmin = "admin"
	// RoleAuditor may read the whole audit trail.
	RoleAuditor = "auditor"
)

// MaxDisplayNameLength in code points.
const MaxDisplayNameLength = 100

// maxRememberedFailures bounds the failures kept in state; more than the
// largest sensible MaxFailures is never needed.
const maxRememberedFailures = 100

// User is the aggregate. The zero value is an unregistered user; build one
// with Register or FromHistory.
type User struct {
	id           uuid.UUID
	registered   bool
	email        string
	displayName  string
	passwordHash string
	// roles are the granted roles, each with its expiry (zero: never).
	roles        map[string]time.Time
	registeredAt time.Time
	// serviceAccount: a machine's account (RegisterServiceAccount).
	serviceAccount bool
	// lockedByAdmin and disabled refuse logins (admin.go).
	lockedByAdmin bool
	disabled      bool
	// erased, termsVersion and consents: erasure.go.
	erased       bool
	termsVersion string
	consents     []Consent
	// external are the linked identities, by provider.
	external map[string]ExternalIdentity

	throttle LoginThrottle

	// emailVerified: the current address was verified (verification.go);
	// verifications are the outstanding links by token id, reset the
	// outstanding reset link.
	emailVerified bool
	verifications map[uuid.UUID]*pendingToken
	reset         *pendingToken

	version int
	changes []events.Event
}

// FromHistory folds a user stream's events, oldest first. It fails on an
// event type this aggregate does not know (a sign of a wrong stream or a
// missing upcaster) rather than ignore it.
func FromHistory(history []events.Event) (*User, error) {
	u := &User{}
	for _, e := range history {
		if err := u.apply(e); err != nil {
			return nil, err
		}
		u.version++
	}
	return u, nil
}

// Register creates a user: it validates and normalises the email and the
// display name and records Registered with the default role. passwordHash
// must be a PHC string (the hash is made outside the domain); anything else
// is refused, as a guard against a raw password reaching the log.
func Register(id uuid.UUID, email, displayName, passwordHash string, now time.Time) (*User, error) {
	if id == uuid.Nil {
		return nil, invalid("user_id", "is required")
	}
	var errs []error
	e, err := NormalizeEmail(email)
	errs = append(errs, err)
	dn, err := NormalizeDisplayName(displayName)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if !isPHC(passwordHash) {
		return nil, fmt.Errorf("user: password hash is not a PHC string")
	}
	u := &User{}
	u.record(Registered{UserID: id, Email: e, DisplayName: dn, PasswordHash: passwordHash, Roles: []string{DefaultRole}, RegisteredAt: now.UTC()})
	return u, nil
}

// RegisterServiceAccount creates a service account: an account for a
// machine (the OCR worker, a service that introspects tokens), named
// name (a display name), holding roles from the start. It has no email
// and no password, so no login can reach it; it acts only through the
// API keys an administrator creates for it. Its stream is a user stream,
// so roles, grants, expiry and disabling work on it as on anyone's.
func RegisterServiceAccount(id uuid.UUID, name string, roles []string, now time.Time) (*User, error) {
	if id == uuid.Nil {
		return nil, invalid("user_id", "is required")
	}
	var errs []error
	dn, err := NormalizeDisplayName(name)
	errs = append(errs, refield(err, "name", ""))
	for _, r := range roles {
		errs = append(errs, refield(ValidateRole(r), "roles", fmt.Sprintf("%q ", r)))
	}
	if len(roles) == 0 {
		errs = append(errs, invalid("roles", "at least one role is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	roles = slices.Compact(slices.Sorted(slices.Values(roles)))
	u := &User{}
	u.record(Registered{UserID: id, DisplayName: dn, Roles: roles, RegisteredAt: now.UTC(), ServiceAccount: true})
	return u, nil
}

// refield moves an *InvalidInputError to field (its message after
// prefix); any other error, or nil, as it is.
func refield(err error, field, prefix string) error {
	var ie *InvalidInputError
	if !errors.As(err, &ie) {
		return err
	}
	return invalid(field, prefix+ie.Message)
}

// ServiceAccount reports whether the account is a machine's
// (RegisterServiceAccount).
func (u *User) ServiceAccount() bool { return u.serviceAccount }

// NormalizeDisplayName trims white space, applies NFC and checks the length
// (1 to 100 code points) and characters: no control characters, no
// invisible formatting characters (bidi overrides that reorder what others
// see) except the zero-width joiner emoji need, no line breaks.
func NormalizeDisplayName(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid("display_name", "must be valid UTF-8")
	}
	s = norm.NFC.String(strings.TrimSpace(s))
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return "", invalid("display_name", "is required")
	}
	if n > MaxDisplayNameLength {
		return "", invalid("display_name", "must be at most 100 characters long")
	}
	for _, r := range s {
		if unicode.IsControl(r) || (unicode.Is(unicode.Cf, r) && r != '\u200d') || unicode.In(r, unicode.Zl, unicode.Zp) {
			return "", invalid("display_name", "must not contain control or invisible formatting characters")
		}
	}
	return s, nil
}

// isPHC accepts "$<id>$..." with a lower-case algorithm id and at least
// three more fields, the shape of argon2id, bcrypt-in-PHC and scrypt hashes.
func isPHC(s string) bool {
	parts := strings.Split(s, "$")
	if len(parts) < 4 || parts[0] != "" || parts[1] == "" {
		return false
	}
	for _, r := range parts[1] {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// ID is the user id.
func (u *User) ID() uuid.UUID { return u.id }

// Registered reports whether the user exists.
func (u *User) Registered() bool { return u.registered }

// Email is the normalised address.
func (u *User) Email() string { return u.email }

// DisplayName is the display name.
func (u *User) DisplayName() string { return u.displayName }

// PasswordHash is the current PHC string, for verification; "" for a user
// created by an external login (HasPassword).
func (u *User) PasswordHash() string { return u.passwordHash }

// Roles returns the granted roles, sorted, expired grants included (the
// roles claim of a session; authorization asks ActiveRoles).
func (u *User) Roles() []string { return slices.Sorted(maps.Keys(u.roles)) }

// HasRole reports whether the user has a grant of role, expired or not.
func (u *User) HasRole(role string) bool { _, ok := u.roles[role]; return ok }

// Grant is one role granted to a user. ExpiresAt is zero for a grant
// that does not expire.
type Grant struct {
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ActiveAt reports whether g counts at now: it stops counting at its
// expiry, without anyone acting.
func (g Grant) ActiveAt(now time.Time) bool { return g.ExpiresAt.IsZero() || now.Before(g.ExpiresAt) }

// Grants returns every grant, sorted by role, expired ones included.
func (u *User) Grants() []Grant {
	out := make([]Grant, 0, len(u.roles))
	for _, r := range u.Roles() {
		out = append(out, Grant{Role: r, ExpiresAt: u.roles[r]})
	}
	return out
}

// ActiveRoles returns the roles whose grants count at now, sorted.
func (u *User) ActiveRoles(now time.Time) []string {
	var out []string
	for _, g := range u.Grants() {
		if g.ActiveAt(now) {
			out = append(out, g.Role)
		}
	}
	return out
}

// RegisteredAt is when the user registered.
func (u *User) RegisteredAt() time.Time { return u.registeredAt }

// Version is the number of events folded from the stream (not counting
// Changes). The repository appends Changes with expected revision
// Version()-1, or NoStream when it is 0.
func (u *User) Version() int { return u.version }

// Changes are the events recorded by commands since loading, to append.
func (u *User) Changes() []events.Event { return slices.Clone(u.changes) }

// LoginRetryAfter is how long the attempt must wait before its password
// is checked (0: go ahead). A login handler calls it before verifying the
// password and, when it is positive, answers 429 without verifying: a
// throttled guess learns nothing.
func (u *User) LoginRetryAfter(a LoginAttempt, now time.Time, p ThrottlePolicy) time.Duration {
	return u.throttle.RetryAfter(a, now, p)
}

// LoginRetryAfterPending is LoginRetryAfter counting also the failures a
// command answered and is still appending (LoginThrottle.WithPending).
func (u *User) LoginRetryAfterPending(pending []LoginFailed, a LoginAttempt, now time.Time, p ThrottlePolicy) time.Duration {
	t := u.throttle.WithPending(pending)
	return t.RetryAfter(a, now, p)
}

// HasLoginFailuresPending is HasLoginFailures counting pending failures too.
func (u *User) HasLoginFailuresPending(pending []LoginFailed, a LoginAttempt) bool {
	t := u.throttle.WithPending(pending)
	return t.HasFailures(a)
}

// RecordLoginFailure records a wrong password from a at now. A throttled
// attempt records nothing and returns a *ThrottledError: attempts that
// come too soon neither extend the wait nor grow the stream (the per-IP
// rate limit is what slows a flood of them).
func (u *User) RecordLoginFailure(a LoginAttempt, now time.Time, p ThrottlePolicy) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if wait := u.LoginRetryAfter(a, now, p); wait > 0 {
		return &ThrottledError{RetryAfter: wait}
	}
	u.record(LoginFailed{UserID: u.id, FailedAt: now.UTC(), Source: a.Source, Device: a.Device, Method: a.Method})
	return nil
}

// RecordLoginSuccess forgets the failures of a's source after a correct
// password. It records nothing when that source has none.
func (u *User) RecordLoginSuccess(a LoginAttempt, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if !u.throttle.HasFailures(a) {
		return nil
	}
	u.record(LoginFailuresCleared{UserID: u.id, Source: a.Source, Device: a.Device, ClearedAt: now.UTC()})
	return nil
}

// HasLoginFailures reports whether a success from a would clear failures.
func (u *User) HasLoginFailures(a LoginAttempt) bool { return u.throttle.HasFailures(a) }

// Unlock lifts an administrator's lock (LockByAdmin) and forgets every
// failure the throttle counts for the account (an administrator's
// action). It records nothing when there is neither.
func (u *User) Unlock(now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if len(u.throttle.failures) == 0 && !u.lockedByAdmin {
		return nil
	}
	u.record(Unlocked{UserID: u.id, UnlockedAt: now.UTC()})
	return nil
}

// ChangePassword records a new password hash chosen by the user. The
// policy check and hashing happen before, outside the domain.
func (u *User) ChangePassword(passwordHash string, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if !isPHC(passwordHash) {
		return fmt.Errorf("user: password hash is not a PHC string")
	}
	u.record(PasswordChanged{UserID: u.id, PasswordHash: passwordHash, ChangedAt: now.UTC()})
	return nil
}

// Rehash records the verified password hashed under new parameters (a login
// that found the stored hash outdated). Same hash, no event.
func (u *User) Rehash(passwordHash string, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if !isPHC(passwordHash) {
		return fmt.Errorf("user: password hash is not a PHC string")
	}
	if passwordHash == u.passwordHash {
		return nil
	}
	u.record(PasswordRehashed{UserID: u.id, PasswordHash: passwordHash, RehashedAt: now.UTC()})
	return nil
}

// ValidateRole checks a role name: 1 to 64 characters, a lower-case letter
// first, then lower-case letters, digits and "_.:-".
func ValidateRole(role string) error {
	if role == "" || len(role) > 64 || role[0] < 'a' || role[0] > 'z' {
		return invalid("role", "must start with a lower-case letter and be at most 64 characters long")
	}
	for _, r := range role {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && !strings.ContainsRune("_.:-", r) {
			return invalid("role", "may contain only lower-case letters, digits and _.:-")
		}
	}
	return nil
}

// GrantRole adds role, without expiry; granting a role held without
// expiry records nothing, and a grant that would expire no longer does.
func (u *User) GrantRole(role string, now time.Time) error {
	return u.GrantRoleUntil(role, time.Time{}, now)
}

// GrantRoleUntil grants role until expiresAt (zero: no expiry), replacing
// the expiry of a grant already held; the same grant records nothing. An
// expiry not after now is refused.
func (u *User) GrantRoleUntil(role string, expiresAt, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if err := ValidateRole(role); err != nil {
		return err
	}
	if !expiresAt.IsZero() && !expiresAt.After(now) {
		return invalid("expires_at", "must be in the future")
	}
	if held, ok := u.roles[role]; ok && held.Equal(expiresAt) {
		return nil
	}
	e := RoleGranted{UserID: u.id, Role: role, GrantedAt: now.UTC()}
	if !expiresAt.IsZero() {
		at := expiresAt.UTC()
		e.ExpiresAt = &at
	}
	u.record(e)
	return nil
}

// RevokeRole removes role; revoking a role not held records nothing.
func (u *User) RevokeRole(role string, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if !u.HasRole(role) {
		return nil
	}
	u.record(RoleRevoked{UserID: u.id, Role: role, RevokedAt: now.UTC()})
	return nil
}

// ChangeDisplayName sets a new display name; the same name records nothing.
func (u *User) ChangeDisplayName(name string, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	dn, err := NormalizeDisplayName(name)
	if err != nil {
		return err
	}
	if dn == u.displayName {
		return nil
	}
	u.record(DisplayNameChanged{UserID: u.id, DisplayName: dn, ChangedAt: now.UTC()})
	return nil
}

func (u *User) record(e events.Event) {
	if err := u.apply(e); err != nil {
		// Only the aggregate's own event types reach here.
		panic(err)
	}
	u.changes = append(u.changes, e)
}

func (u *User) apply(e events.Event) error {
	switch e := e.(type) {
	case Registered:
		if u.registered {
			return ErrAlreadyRegistered
		}
		u.id, u.registered = e.UserID, true
		u.email, u.displayName, u.passwordHash = e.Email, e.DisplayName, e.PasswordHash
		u.roles = make(map[string]time.Time, len(e.Roles))
		for _, r := range e.Roles {
			u.roles[r] = time.Time{}
		}
		u.registeredAt = e.RegisteredAt
		u.serviceAccount = e.ServiceAccount
	case PasswordChanged:
		u.passwordHash = e.PasswordHash
		u.applyVerification(e)
	case EmailVerificationRequested, EmailVerified, EmailChanged, PasswordResetRequested, RegistrationAttempted:
		u.applyVerification(e)
	case PasswordRehashed:
		u.passwordHash = e.PasswordHash
	case LoginFailed, LoginFailuresCleared, Locked:
		u.throttle.Observe(e)
	case Unlocked:
		u.throttle.Observe(e)
		u.lockedByAdmin = false
	case RoleGranted:
		if u.roles == nil {
			u.roles = map[string]time.Time{}
		}
		var until time.Time
		if e.ExpiresAt != nil {
			until = *e.ExpiresAt
		}
		u.roles[e.Role] = until
	case RoleRevoked:
		delete(u.roles, e.Role)
	case LockedByAdmin, Disabled, Enabled:
		u.applyAdmin(e)
	case DisplayNameChanged:
		u.displayName = e.DisplayName
	case ExternalIdentityLinked:
		if u.external == nil {
			u.external = map[string]ExternalIdentity{}
		}
		u.external[e.Provider] = ExternalIdentity{Provider: e.Provider, ExternalUserID: e.ExternalUserID, ProviderEmail: e.ProviderEmail}
	case ExternalIdentityUnlinked:
		delete(u.external, e.Provider)
	case ExternalSignedIn:
	case Erased, TermsAccepted:
		u.applyErasure(e)
	default:
		return fmt.Errorf("user: unexpected event %T on a user stream", e)
	}
	return nil
}
