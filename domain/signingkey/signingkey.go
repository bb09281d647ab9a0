// Package signingkey records the lifecycle of the server's JWT signing
// keys: added (published in the JWKS), activated (signing), retired
// (signing nothing, published until every token it signed has expired).
//
// All keys share one stream, StreamName, so that activating a new key and
// retiring the old one are one atomic append. The events carry the public
// key and never the private one: that lives sealed in the key table
// (auth/keys). The package is pure.
package signingkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/authledger/authledger/events"
)

// StreamName is the one stream of key lifecycle events.
const StreamName = "signing-keys"

// Event names: data in the log, never renamed.
const (
	EventAdded     = "signing_key.added.v1"
	EventActivated = "signing_key.activated.v1"
	EventRetired   = "signing_key.retired.v1"
)

// Added records a new key, published in the JWKS from now on.
type Added struct {
	KeyID     string          `json:"key_id"`
	Algorithm string          `json:"algorithm"`
	PublicKey json.RawMessage `json:"public_key"` // the public JWK
	AddedAt   time.Time       `json:"added_at"`
}

// Activated records that a key signs new tokens from now on.
type Activated struct {
	KeyID       string    `json:"key_id"`
	ActivatedAt time.Time `json:"activated_at"`
}

// Retired records that a key signs nothing from now on. RetainUntil is when
// it leaves the JWKS: the retirement plus the longest access-token lifetime
// and leeway, or the retirement itself for a compromised key.
type Retired struct {
	KeyID       string    `json:"key_id"`
	RetiredAt   time.Time `json:"retired_at"`
	RetainUntil time.Time `json:"retain_until"`
}

func (Added) EventName() string     { return EventAdded }
func (Activated) EventName() string { return EventActivated }
func (Retired) EventName() string   { return EventRetired }

// AllEvents lists one zero value of every event type of this package.
func AllEvents() []events.Event { return []events.Event{Added{}, Activated{}, Retired{}} }

// RegisterEvents adds the signing key events to r as value types.
func RegisterEvents(r *events.Registry) error { return r.Register(AllEvents()...) }

var (
	// ErrUnknownKey: no key with that id was added.
	ErrUnknownKey = errors.New("signingkey: unknown key")
	// ErrKeyExists: a key with that id was already added.
	ErrKeyExists = errors.New("signingkey: key already added")
	// ErrRetired: a retired key cannot be activated again.
	ErrRetired = errors.New("signingkey: key is retired")
	// ErrInvalidInput: a missing id, algorithm or public key.
	ErrInvalidInput = errors.New("signingkey: invalid input")
)

// Key is one key's state.
type Key struct {
	ID          string
	Algorithm   string
	PublicKey   json.RawMessage
	AddedAt     time.Time
	ActivatedAt time.Time // zero until activated
	RetiredAt   time.Time // zero until retired
	RetainUntil time.Time // zero until retired
}

// Active reports whether the key signs.
func (k Key) Active() bool { return !k.ActivatedAt.IsZero() && k.RetiredAt.IsZero() }

// Ring is the aggregate of the signing-keys stream.
type Ring struct {
	keys    []Key
	version int
	changes []events.Event
}

// FromHistory folds the stream, oldest first.
func FromHistory(history []events.Event) (*Ring, error) {
	r := &Ring{}
	for _, e := range history {
		if err := r.apply(e); err != nil {
			return nil, err
		}
		r.version++
	}
	return r, nil
}

// Keys returns every key, in the order they were added.
func (r *Ring) Keys() []Key { return slices.Clone(r.keys) }

// Active returns the key that signs, if any.
func (r *Ring) Active() (Key, bool) {
	for _, k := range r.keys {
		if k.Active() {
			return k, true
		}
	}
	return Key{}, false
}

// Version is the number of events folded; append Changes at Version()-1
// (NoStream when it is 0).
func (r *Ring) Version() int { return r.version }

// Changes are the events to append.
func (r *Ring) Changes() []events.Event { return slices.Clone(r.changes) }

func (r *Ring) find(id string) int {
	return slices.IndexFunc(r.keys, func(k Key) bool { return k.ID == id })
}

// Add records a new key (published, not yet signing). The private key must
// be sealed and stored before this is appended, so that no event names a
// key the server cannot load.
func (r *Ring) Add(id, algorithm string, publicKey json.RawMessage, now time.Time) error {
	if id == "" || algorithm == "" || !json.Valid(publicKey) {
		return fmt.Errorf("%w: a key needs an id, an algorithm and a public JWK", ErrInvalidInput)
	}
	if r.find(id) >= 0 {
		return ErrKeyExists
	}
	r.record(Added{KeyID: id, Algorithm: algorithm, PublicKey: slices.Clone(publicKey), AddedAt: now.UTC()})
	return nil
}

// Activate makes id the signing key at now and, in the same append,
// retires the key it replaces, which stays published until now+retain
// (retain: the access-token lifetime plus leeway). Activating the active
// key records nothing.
//
// Activate a key some time after adding it (the overlap window), so that
// verifiers caching the JWKS have fetched it before the first token it
// signs; DueForActivation says when. At first start, with no tokens in the
// world, add and activate at once.
func (r *Ring) Activate(id string, now time.Time, retain time.Duration) error {
	i := r.find(id)
	if i < 0 {
		return ErrUnknownKey
	}
	k := r.keys[i]
	if !k.RetiredAt.IsZero() {
		return ErrRetired
	}
	if k.Active() {
		return nil
	}
	now = now.UTC()
	if cur, ok := r.Active(); ok {
		r.record(Retired{KeyID: cur.ID, RetiredAt: now, RetainUntil: now.Add(retain)})
	}
	r.record(Activated{KeyID: id, ActivatedAt: now})
	return nil
}

// Retire stops id signing at now and unpublishes it at now+retain. Use
// retain 0 for a compromised key (its tokens stop verifying at once).
// Retiring a retired key records nothing.
func (r *Ring) Retire(id string, now time.Time, retain time.Duration) error {
	i := r.find(id)
	if i < 0 {
		return ErrUnknownKey
	}
	if !r.keys[i].RetiredAt.IsZero() {
		return nil
	}
	now = now.UTC()
	r.record(Retired{KeyID: id, RetiredAt: now, RetainUntil: now.Add(retain)})
	return nil
}

// DueForActivation returns the newest key added but never activated whose
// overlap window (publishLead since it was added) has passed at now.
func (r *Ring) DueForActivation(now time.Time, publishLead time.Duration) (Key, bool) {
	for i := len(r.keys) - 1; i >= 0; i-- {
		k := r.keys[i]
		if k.ActivatedAt.IsZero() && k.RetiredAt.IsZero() && !now.Before(k.AddedAt.Add(publishLead)) {
			return k, true
		}
	}
	return Key{}, false
}

func (r *Ring) record(e events.Event) {
	if err := r.apply(e); err != nil {
		panic(err) // only this aggregate's own, valid events reach here
	}
	r.changes = append(r.changes, e)
}

func (r *Ring) apply(e events.Event) error {
	switch e := e.(type) {
	case Added:
		if r.find(e.KeyID) >= 0 {
			return fmt.Errorf("%w: %s", ErrKeyExists, e.KeyID)
		}
		r.keys = append(r.keys, Key{ID: e.KeyID, Algorithm: e.Algorithm, PublicKey: e.PublicKey, AddedAt: e.AddedAt})
	case Activated:
		i := r.find(e.KeyID)
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrUnknownKey, e.KeyID)
		}
		r.keys[i].ActivatedAt = e.ActivatedAt
	case Retired:
		i := r.find(e.KeyID)
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrUnknownKey, e.KeyID)
		}
		r.keys[i].RetiredAt, r.keys[i].RetainUntil = e.RetiredAt, e.RetainUntil
	default:
		return fmt.Errorf("signingkey: unexpected event %T on the signing-keys stream", e)
	}
	return nil
}
