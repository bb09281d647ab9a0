// Package apikey is the API key aggregate: a credential a user (or an
// administrator, for a service account) creates with some of the
// owner's permissions and an expiry, shown once, kept as a digest, and
// revocable. One stream per key ("api-key-<id>"): creation and revocation
// are its only events, so a key's whole life is two events at most.
//
// The key never grants more than its owner holds at the time of use:
// the permissions recorded here are an upper bound (the key's scopes),
// intersected with the owner's permissions at each request (the
// authentication middleware does; docs/adr/0029). Create refuses scopes
// the creator does not hold, so that the bound is honest from the start.
//
// The package is pure: time and the digest come in as arguments.
package apikey

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
)

// StreamPrefix starts every key's stream name.
const StreamPrefix = "api-key-"

// StreamName is the key's stream.
func StreamName(id uuid.UUID) string { return StreamPrefix + id.String() }

// MaxLifetime bounds a key's expiry: a credential that outlives its
// purpose is the one found in a leaked configuration years later.
const MaxLifetime = 366 * 24 * time.Hour

// MaxNameLength bounds a key's name, in code points.
const MaxNameLength = 100

// MaxPerOwner bounds the keys an owner holds (not revoked, not expired):
// every instance keeps every key in memory.
const MaxPerOwner = 100

var (
	// ErrNotFound: no such key, or another owner's (not told apart).
	ErrNotFound = errors.New("apikey: not found")
	// ErrInvalid: a presented key is malformed, unknown, revoked, expired
	// or its secret does not match (one answer for all).
	ErrInvalid = errors.New("apikey: invalid key")
	// ErrServiceAccountNotFound: no service account of that id (a
	// person's account is not one).
	ErrServiceAccountNotFound = errors.New("apikey: service account not found")
)

// Event names: data in the log, never renamed.
const (
	EventCreated = "api_key.created.v1"
	EventRevoked = "api_key.revoked.v1"
)

// Created starts a key's stream. Digest is the hex HMAC-SHA-256 of the
// key as shown to its owner (auth/apikey), never the key. Permissions
// are its scopes (sorted, at least one).
type Created struct {
	KeyID       uuid.UUID           `json:"key_id"`
	OwnerID     uuid.UUID           `json:"owner_id"`
	Name        string              `json:"name"`
	Permissions []access.Permission `json:"permissions"`
	Digest      string              `json:"digest"`
	ExpiresAt   time.Time           `json:"expires_at"`
	CreatedAt   time.Time           `json:"created_at"`
}

// Revoked ends a key: it authenticates nothing from then on.
type Revoked struct {
	KeyID     uuid.UUID `json:"key_id"`
	OwnerID   uuid.UUID `json:"owner_id"`
	RevokedAt time.Time `json:"revoked_at"`
}

func (Created) EventName() string { return EventCreated }
func (Revoked) EventName() string { return EventRevoked }

// AllEvents lists one zero value of every event type of this package.
func AllEvents() []events.Event { return []events.Event{Created{}, Revoked{}} }

// RegisterEvents adds the key events to r.
func RegisterEvents(r *events.Registry) error { return r.Register(AllEvents()...) }

// Spec is what a key is created with.
type Spec struct {
	KeyID       uuid.UUID
	OwnerID     uuid.UUID
	Name        string
	Permissions []access.Permission
	ExpiresAt   time.Time
	Digest      string
}

// Key is the aggregate. The zero value is a key not created; build one
// with FromHistory.
type Key struct {
	view    View
	version int
	changes []events.Event
}

// View is a key as listed (never its secret nor its digest).
type View struct {
	ID          uuid.UUID           `json:"id"`
	OwnerID     uuid.UUID           `json:"owner_id"`
	Name        string              `json:"name"`
	Permissions []access.Permission `json:"permissions"`
	ExpiresAt   time.Time           `json:"expires_at"`
	CreatedAt   time.Time           `json:"created_at"`
	RevokedAt   *time.Time          `json:"revoked_at,omitempty"`
}

// ActiveAt reports whether the key authenticates at now.
func (v View) ActiveAt(now time.Time) bool { return v.RevokedAt == nil && now.Before(v.ExpiresAt) }

// FromHistory folds a key's stream, oldest first.
func FromHistory(history []events.Event) (*Key, error) {
	k := &Key{}
	for _, e := range history {
		if err := k.apply(e); err != nil {
			return nil, err
		}
		k.version++
	}
	return k, nil
}

// Version is the number of events folded (see commands.Aggregate).
func (k *Key) Version() int { return k.version }

// Changes are the events recorded since loading.
func (k *Key) Changes() []events.Event { return slices.Clone(k.changes) }

// Created reports whether the key exists.
func (k *Key) Created() bool { return k.view.ID != uuid.Nil }

// View is the key as listed.
func (k *Key) View() View { return k.view }

// Create records a new key for s.OwnerID. held is what the creator may
// hand on (the intersection of the creator's permissions now and, for a
// service account's key, the account's): every scope must be in it. The
// expiry must be after now and within MaxLifetime.
func (k *Key) Create(s Spec, held access.Set, now time.Time) error {
	if k.Created() {
		return fmt.Errorf("apikey: key %s exists", s.KeyID)
	}
	if s.KeyID == uuid.Nil || s.OwnerID == uuid.Nil || s.Digest == "" {
		return errors.New("apikey: Create needs a key id, an owner and a digest")
	}
	var errs []error
	name, err := normalizeName(s.Name)
	errs = append(errs, err)
	if len(s.Permissions) == 0 {
		errs = append(errs, invalid("permissions", "at least one permission is required"))
	}
	for _, p := range s.Permissions {
		switch {
		case !access.Known(p):
			errs = append(errs, invalid("permissions", fmt.Sprintf("%q is not a permission", p)))
		case !held.Has(p):
			errs = append(errs, invalid("permissions", fmt.Sprintf("%q is not held by the key's owner and its creator: a key holds only some of their permissions", p)))
		}
	}
	now = now.UTC()
	switch {
	case s.ExpiresAt.IsZero():
		errs = append(errs, invalid("expires_at", "is required"))
	case !s.ExpiresAt.After(now):
		errs = append(errs, invalid("expires_at", "must be in the future"))
	case s.ExpiresAt.Sub(now) > MaxLifetime:
		errs = append(errs, invalid("expires_at", fmt.Sprintf("must be within %d days", int(MaxLifetime.Hours()/24))))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	perms := slices.Compact(slices.Sorted(slices.Values(s.Permissions)))
	k.record(Created{KeyID: s.KeyID, OwnerID: s.OwnerID, Name: name, Permissions: perms, Digest: s.Digest,
		ExpiresAt: s.ExpiresAt.UTC().Truncate(time.Second), CreatedAt: now})
	return nil
}

// Revoke ends the key. owner is the caller's claim to it: another
// owner's key is ErrNotFound. Revoking a revoked key records nothing.
func (k *Key) Revoke(owner uuid.UUID, now time.Time) error {
	if !k.Created() || k.view.OwnerID != owner {
		return ErrNotFound
	}
	if k.view.RevokedAt != nil {
		return nil
	}
	k.record(Revoked{KeyID: k.view.ID, OwnerID: owner, RevokedAt: now.UTC()})
	return nil
}

// normalizeName trims and checks a key's name: 1 to MaxNameLength code
// points, no control or invisible formatting characters.
func normalizeName(s string) (string, error) {
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	if !utf8.ValidString(s) || n == 0 || n > MaxNameLength {
		return "", invalid("name", fmt.Sprintf("is required, valid UTF-8 and at most %d characters long", MaxNameLength))
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", invalid("name", "must not contain control or invisible formatting characters")
		}
	}
	return s, nil
}

// Apply folds one event into v (the follower of auth/apikey keeps
// views, not aggregates).
func Apply(v *View, e events.Event) error {
	switch e := e.(type) {
	case Created:
		*v = View{ID: e.KeyID, OwnerID: e.OwnerID, Name: e.Name, Permissions: slices.Clone(e.Permissions), ExpiresAt: e.ExpiresAt, CreatedAt: e.CreatedAt}
	case Revoked:
		at := e.RevokedAt
		v.RevokedAt = &at
	default:
		return fmt.Errorf("apikey: unexpected event %T on a key stream", e)
	}
	return nil
}

func (k *Key) record(e events.Event) {
	if err := k.apply(e); err != nil {
		panic(err)
	}
	k.changes = append(k.changes, e)
}

func (k *Key) apply(e events.Event) error { return Apply(&k.view, e) }

// invalid is the user package's field error, so that one 400
// invalid-input answer lists every broken field.
func invalid(field, msg string) error { return &user.InvalidInputError{Field: field, Message: msg} }
