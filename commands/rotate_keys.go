package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/domain/signingkey"
	"github.com/authledger/authledger/eventstore"
)

// KeyManager bootstraps, rotates and loads the signing keys. A key is
// sealed and saved in the key table before any event names it, so the log
// never names a key the server cannot load.
type KeyManager struct {
	Ring      *Repository[*signingkey.Ring]
	Store     keys.Store
	Master    *keys.MasterKey
	Algorithm jwa.SignatureAlgorithm
	// Retain is how long a retired key stays published: the access-token
	// lifetime plus leeway.
	Retain time.Duration
	// Overlap is how long an added key is published before it signs.
	Overlap time.Duration
	Meta    Meta
	Now     func() time.Time
}

func (m *KeyManager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *KeyManager) newKey(ctx context.Context, now time.Time) (*keys.SigningKey, error) {
	k, err := keys.Generate(m.Algorithm)
	if err != nil {
		return nil, err
	}
	sealed, err := m.Master.Seal(k, now)
	if err != nil {
		return nil, err
	}
	if err := m.Store.SaveSealed(ctx, sealed); err != nil {
		return nil, err
	}
	return k, nil
}

// Bootstrap makes sure a key signs: on first start (no active key) it adds
// and activates one at once (no token exists yet that needs an overlap);
// otherwise it activates a rotated key whose overlap has passed. It then
// loads the ring.
func (m *KeyManager) Bootstrap(ctx context.Context) (*keys.KeyRing, error) {
	now := m.now()
	ring, err := m.Ring.Load(ctx, signingkey.StreamName)
	if err != nil {
		return nil, err
	}
	if _, ok := ring.Active(); !ok {
		k, err := m.newKey(ctx, now)
		if err != nil {
			return nil, err
		}
		pub, err := k.PublicJSON()
		if err != nil {
			return nil, err
		}
		if _, err := m.Ring.Update(ctx, signingkey.StreamName, m.Meta, func(r *signingkey.Ring) error {
			if _, ok := r.Active(); ok {
				return nil // another instance bootstrapped first
			}
			if err := r.Add(k.ID(), k.Algorithm().String(), pub, now); err != nil {
				return err
			}
			return r.Activate(k.ID(), now, m.Retain)
		}); err != nil {
			return nil, err
		}
	} else if _, err := m.ActivateDue(ctx); err != nil {
		return nil, err
	}
	return m.LoadRing(ctx)
}

// Rotate adds a key (published now, signing after Overlap via
// ActivateDue). It is what `authledger keys rotate` runs.
func (m *KeyManager) Rotate(ctx context.Context) (string, eventstore.Position, error) {
	now := m.now()
	k, err := m.newKey(ctx, now)
	if err != nil {
		return "", eventstore.Position{}, err
	}
	pub, err := k.PublicJSON()
	if err != nil {
		return "", eventstore.Position{}, err
	}
	res, err := m.Ring.Update(ctx, signingkey.StreamName, m.Meta, func(r *signingkey.Ring) error {
		return r.Add(k.ID(), k.Algorithm().String(), pub, now)
	})
	return k.ID(), res.Position, err
}

// ActivateDue activates the newest added key whose overlap window has
// passed, retiring the one it replaces. It reports whether it did.
func (m *KeyManager) ActivateDue(ctx context.Context) (bool, error) {
	now := m.now()
	did := false
	_, err := m.Ring.Update(ctx, signingkey.StreamName, m.Meta, func(r *signingkey.Ring) error {
		k, ok := r.DueForActivation(now, m.Overlap)
		if !ok {
			return nil
		}
		did = true
		return r.Activate(k.ID, now, m.Retain)
	})
	return did, err
}

// LoadRing builds the key ring from the stream and the key table.
func (m *KeyManager) LoadRing(ctx context.Context) (*keys.KeyRing, error) {
	ring, err := m.Ring.Load(ctx, signingkey.StreamName)
	if err != nil {
		return nil, err
	}
	lc := make(map[string]keys.Lifecycle)
	for _, k := range ring.Keys() {
		lc[k.ID] = keys.Lifecycle{AddedAt: k.AddedAt, ActivatedAt: k.ActivatedAt, RetiredAt: k.RetiredAt, RetainUntil: k.RetainUntil}
	}
	r, err := keys.LoadRing(ctx, m.Store, m.Master, lc)
	if err != nil {
		return nil, fmt.Errorf("commands: load key ring: %w", err)
	}
	return r, nil
}
