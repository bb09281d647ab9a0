package user

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// ExternalIdentityStreamPrefix starts every external-identity reservation
// stream name.
const ExternalIdentityStreamPrefix = "external-"

// ErrExternalIdentityConflict: the account is linked to another identity of
// the provider, or the provider's identity to another account. Linking
// never moves an identity: an operator unlinks first.
var ErrExternalIdentityConflict = errors.New("user: linked to another external identity")

// ExternalIdentity is an account of an external identity provider.
type ExternalIdentity struct {
	// Provider names the provider: its OpenID issuer, exactly as the
	// tokens' iss claim spells it.
	Provider string
	// ExternalUserID is the provider's id of the user (the subject claim
	// of its tokens).
	ExternalUserID string
	// ProviderEmail is the address the provider has for the user, as the
	// provider spells it (it may differ from the local one in case).
	ProviderEmail string
}

// MaxExternalUserIDLength bounds an external user id, in bytes (Azure AD's
// object ids are 36; pairwise subjects 43).
const MaxExternalUserIDLength = 255

func (x ExternalIdentity) validate() error {
	if x.Provider == "" || len(x.Provider) > 2048 {
		return invalid("provider", "is required and at most 2048 bytes long")
	}
	if x.ExternalUserID == "" || len(x.ExternalUserID) > MaxExternalUserIDLength || strings.ContainsFunc(x.ExternalUserID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return invalid("external_user_id", "is required, at most 255 bytes long, without control characters")
	}
	if len(x.ProviderEmail) > MaxEmailLength {
		return invalid("provider_email", "must be at most 254 bytes long")
	}
	return nil
}

// ExternalIdentityStream is the reservation stream of an external identity:
// appending ExternalIdentityReserved with NoStream claims the identity for
// one user, which holds the rule that one provider account is linked to at
// most one local account (the log has no multi-stream transactions). The
// name is an HMAC of the provider and the id under the reservation key, so
// the stream name reveals neither.
func ExternalIdentityStream(key []byte, provider, externalUserID string) string {
	m := hmac.New(sha256.New, key)
	// The NUL cannot occur in an issuer URL, so no two pairs collide.
	m.Write([]byte(provider + "\x00" + externalUserID))
	return ExternalIdentityStreamPrefix + hex.EncodeToString(m.Sum(nil))
}

// RegisterExternal creates a user from an external identity: no password
// hash (the provider checks the password; the local password path refuses
// such a user like a wrong password), the default role, and the link, in
// one append. email is the provider's address, normalised here.
func RegisterExternal(id uuid.UUID, email, displayName string, x ExternalIdentity, now time.Time) (*User, error) {
	if id == uuid.Nil {
		return nil, invalid("user_id", "is required")
	}
	e, err := NormalizeEmail(email)
	dn, dnErr := NormalizeDisplayName(displayName)
	if err := errors.Join(err, dnErr, x.validate()); err != nil {
		return nil, err
	}
	u := &User{}
	u.record(Registered{UserID: id, Email: e, DisplayName: dn, Roles: []string{DefaultRole}, RegisteredAt: now.UTC()})
	u.record(ExternalIdentityLinked{UserID: id, Provider: x.Provider, ExternalUserID: x.ExternalUserID, ProviderEmail: x.ProviderEmail, LinkedAt: now.UTC()})
	return u, nil
}

// LinkExternalIdentity links the user to x. Linked to x already (a retried
// login), it records nothing; linked to another identity of the same
// provider, ErrExternalIdentityConflict.
func (u *User) LinkExternalIdentity(x ExternalIdentity, now time.Time) error {
	if !u.registered {
		return ErrNotRegistered
	}
	if err := x.validate(); err != nil {
		return err
	}
	if cur, ok := u.external[x.Provider]; ok {
		if cur.ExternalUserID != x.ExternalUserID {
			return ErrExternalIdentityConflict
		}
		return nil
	}
	u.record(ExternalIdentityLinked{UserID: u.id, Provider: x.Provider, ExternalUserID: x.ExternalUserID, ProviderEmail: x.ProviderEmail, LinkedAt: now.UTC()})
	return nil
}

// ExternalIdentity is the user's identity at provider, if linked.
func (u *User) ExternalIdentity(provider string) (ExternalIdentity, bool) {
	x, ok := u.external[provider]
	return x, ok
}

// HasPassword reports whether the user has a local password hash (a user
// created by an external login has none).
func (u *User) HasPassword() bool { return u.passwordHash != "" }

// ExternalIdentityReservation is the aggregate of one external-identity
// reservation stream (ExternalIdentityStream): which user, if any, the
// provider's account is linked to.
type ExternalIdentityReservation struct {
	holder  uuid.UUID
	held    bool
	version int
	changes []events.Event
}

// ExternalReservationFromHistory folds a reservation stream's events,
// oldest first. An empty history is an identity linked to nobody.
func ExternalReservationFromHistory(history []events.Event) (*ExternalIdentityReservation, error) {
	r := &ExternalIdentityReservation{}
	for _, e := range history {
		if err := r.apply(e); err != nil {
			return nil, err
		}
		r.version++
	}
	return r, nil
}

// Holder returns the user the identity is reserved for, if any.
func (r *ExternalIdentityReservation) Holder() (uuid.UUID, bool) { return r.holder, r.held }

// Version is the number of events folded.
func (r *ExternalIdentityReservation) Version() int { return r.version }

// Changes are the events to append.
func (r *ExternalIdentityReservation) Changes() []events.Event { return slices.Clone(r.changes) }

// Reserve claims the identity for userID. Held by the same user (a retried
// login), it records nothing; held by another, ErrExternalIdentityConflict.
func (r *ExternalIdentityReservation) Reserve(userID uuid.UUID, now time.Time) error {
	if userID == uuid.Nil {
		return invalid("user_id", "is required")
	}
	if r.held {
		if r.holder == userID {
			return nil
		}
		return ErrExternalIdentityConflict
	}
	r.record(ExternalIdentityReserved{UserID: userID, ReservedAt: now.UTC()})
	return nil
}

func (r *ExternalIdentityReservation) record(e events.Event) {
	if err := r.apply(e); err != nil {
		panic(err) // only this aggregate's own, valid events reach here
	}
	r.changes = append(r.changes, e)
}

func (r *ExternalIdentityReservation) apply(e events.Event) error {
	switch e := e.(type) {
	case ExternalIdentityReserved:
		r.holder, r.held = e.UserID, true
	case ExternalIdentityReleased:
		r.holder, r.held = uuid.Nil, false
	case ExternalSignInRefused:
	default:
		return fmt.Errorf("user: unexpected event %T on an external identity reservation stream", e)
	}
	return nil
}
