package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Lifecycle is where a key stands, as folded from the signing_key events
// (domain/signingkey). Zero times mean "not yet".
type Lifecycle struct {
	// AddedAt: the key exists and is published in the JWKS from then on,
	// before it signs anything, so verifiers that cache the JWKS know it
	// by the time the first token signed with it arrives.
	AddedAt time.Time
	// ActivatedAt: the key signs new tokens from then on.
	ActivatedAt time.Time
	// RetiredAt: the key signs nothing from then on.
	RetiredAt time.Time
	// RetainUntil: the key leaves the JWKS then; it must be no earlier
	// than RetiredAt plus the longest access-token lifetime (and leeway),
	// when every token it signed has expired.
	RetainUntil time.Time
}

// Entry is a key with its lifecycle.
type Entry struct {
	Key *SigningKey
	Lifecycle
}

// KeyRing is an immutable snapshot of the server's signing keys. Build a
// new one when the lifecycle changes and swap it in a RingHolder.
type KeyRing struct {
	entries []Entry
}

// ErrNoActiveKey: no key is active (none added yet, or every key retired).
var ErrNoActiveKey = errors.New("keys: no active signing key")

// NewKeyRing checks the entries (keys present, ids unique, lifecycle times
// in order) and returns a ring.
func NewKeyRing(entries ...Entry) (*KeyRing, error) {
	seen := map[string]bool{}
	var errs []error
	for i, e := range entries {
		if e.Key == nil {
			errs = append(errs, fmt.Errorf("keys: entry %d has no key", i))
			continue
		}
		if seen[e.Key.ID()] {
			errs = append(errs, fmt.Errorf("keys: key %s appears twice", e.Key.ID()))
		}
		seen[e.Key.ID()] = true
		if e.AddedAt.IsZero() {
			errs = append(errs, fmt.Errorf("keys: key %s has no added time", e.Key.ID()))
		}
		if !e.ActivatedAt.IsZero() && e.ActivatedAt.Before(e.AddedAt) {
			errs = append(errs, fmt.Errorf("keys: key %s is activated before it was added", e.Key.ID()))
		}
		if !e.RetiredAt.IsZero() && e.RetainUntil.Before(e.RetiredAt) {
			errs = append(errs, fmt.Errorf("keys: key %s leaves the JWKS before it is retired", e.Key.ID()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := slices.Clone(entries)
	slices.SortStableFunc(s, func(a, b Entry) int { return a.AddedAt.Compare(b.AddedAt) })
	return &KeyRing{entries: s}, nil
}

// Entries returns the ring's entries, oldest first.
func (r *KeyRing) Entries() []Entry { return slices.Clone(r.entries) }

// Signer returns the key that signs at now: activated at or before now and
// not retired at now; if several are, the most recently activated.
func (r *KeyRing) Signer(now time.Time) (*SigningKey, error) {
	var best *Entry
	for i := range r.entries {
		e := &r.entries[i]
		if e.ActivatedAt.IsZero() || e.ActivatedAt.After(now) || (!e.RetiredAt.IsZero() && !now.Before(e.RetiredAt)) {
			continue
		}
		if best == nil || e.ActivatedAt.After(best.ActivatedAt) {
			best = e
		}
	}
	if best == nil {
		return nil, ErrNoActiveKey
	}
	return best.Key, nil
}

// published reports whether e belongs in the JWKS at now.
func (e Entry) published(now time.Time) bool {
	if now.Before(e.AddedAt) {
		return false
	}
	return e.RetiredAt.IsZero() || now.Before(e.RetainUntil)
}

// PublicSet is the JWKS at now: every key added and not past its
// RetainUntil, public halves only.
func (r *KeyRing) PublicSet(now time.Time) (jwk.Set, error) {
	set := jwk.NewSet()
	for _, e := range r.entries {
		if !e.published(now) {
			continue
		}
		if err := set.AddKey(e.Key.PublicKey()); err != nil {
			return nil, fmt.Errorf("keys: %w", err)
		}
	}
	return set, nil
}

// JWKSJSON is the body of /.well-known/jwks.json at now.
func (r *KeyRing) JWKSJSON(now time.Time) ([]byte, error) {
	set, err := r.PublicSet(now)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("keys: marshal JWKS: %w", err)
	}
	return b, nil
}

// LookupKeyID returns the public key with kid, whatever its lifecycle: a
// token signed by a retired key stays valid until its exp, and once every
// such token has expired the exp check rejects it anyway. The token
// verifier uses this.
func (r *KeyRing) LookupKeyID(kid string) (jwk.Key, bool) {
	for _, e := range r.entries {
		if e.Key.ID() == kid {
			return e.Key.PublicKey(), true
		}
	}
	return nil, false
}

// RingHolder holds the current KeyRing for concurrent readers and lets a
// rotation swap in a new one. The zero value holds no ring.
type RingHolder struct{ p atomic.Pointer[KeyRing] }

// NewRingHolder holds r.
func NewRingHolder(r *KeyRing) *RingHolder {
	h := &RingHolder{}
	h.Store(r)
	return h
}

// Store swaps in r.
func (h *RingHolder) Store(r *KeyRing) { h.p.Store(r) }

// Load returns the current ring, or nil.
func (h *RingHolder) Load() *KeyRing { return h.p.Load() }

// Signer delegates to the current ring.
func (h *RingHolder) Signer(now time.Time) (*SigningKey, error) {
	r := h.p.Load()
	if r == nil {
		return nil, ErrNoActiveKey
	}
	return r.Signer(now)
}

// LookupKeyID delegates to the current ring.
func (h *RingHolder) LookupKeyID(kid string) (jwk.Key, bool) {
	r := h.p.Load()
	if r == nil {
		return nil, false
	}
	return r.LookupKeyID(kid)
}

// LoadRing opens the stored keys named in lifecycles (key id to lifecycle,
// as folded from the signing_key events) and builds a ring. A key the log
// names but the store lacks, or that does not open under master, is an
// error: the server must not start unable to sign or to publish a key its
// tokens name. Stored keys the log does not name (sealed and saved, then a
// crash before the Added event was appended) are ignored.
func LoadRing(ctx context.Context, store Store, master *MasterKey, lifecycles map[string]Lifecycle) (*KeyRing, error) {
	sealed, err := store.LoadSealed(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: load sealed keys: %w", err)
	}
	byID := make(map[string]SealedKey, len(sealed))
	for _, s := range sealed {
		byID[s.ID] = s
	}
	var entries []Entry
	var errs []error
	for id, lc := range lifecycles {
		s, ok := byID[id]
		if !ok {
			errs = append(errs, fmt.Errorf("keys: key %s is in the log but not in the key store", id))
			continue
		}
		k, err := master.Open(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		entries = append(entries, Entry{Key: k, Lifecycle: lc})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return NewKeyRing(entries...)
}
