package apikey

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/access"
	domain "github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// FollowerName is the local follower's name (readiness, status).
const FollowerName = "api-keys"

// DefaultFreshness: as the revocation set's (authn.DefaultFreshness).
const DefaultFreshness = 750 * time.Millisecond

// Config configures Keys.
type Config struct {
	// Store is read while the follower cannot vouch for memory. Required.
	Store eventstore.Store
	// DigestKey keys the digests (derived from the master key). Required,
	// at least 32 bytes.
	DigestKey []byte
	// Freshness: DefaultFreshness when 0.
	Freshness time.Duration
}

// ServiceAccount is a service account as listed.
type ServiceAccount struct {
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"created_at"`
}

// Keys is the instance's view of every API key, of the service accounts
// and of the disabled accounts, folded from the log by a local follower
// (FollowerName), so that a key created or revoked on any instance
// counts on every one within the follower's lag. It fails closed as the
// revocation set does (httpapi/authn): while the follower has not been
// vouched for within Freshness, Authenticate reads the key's stream and
// its owner's instead of trusting memory. Safe for concurrent use.
type Keys struct {
	cfg Config
	reg *events.Registry

	mu       sync.RWMutex
	keys     map[uuid.UUID]*entry
	byOwner  map[uuid.UUID][]uuid.UUID
	accounts map[uuid.UUID]ServiceAccount
	disabled map[uuid.UUID]bool
	// vouchedAt reports when the follower last had every event of its
	// filter committed before it; nil: never.
	vouchedAt func() time.Time
}

type entry struct {
	view   domain.View
	digest string
}

// New returns the view of an empty log.
func New(cfg Config) (*Keys, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("apikey: Config.Store is required"))
	}
	if len(cfg.DigestKey) < 32 {
		errs = append(errs, errors.New("apikey: Config.DigestKey must hold at least 32 bytes"))
	}
	if cfg.Freshness < 0 {
		errs = append(errs, errors.New("apikey: Config.Freshness must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Freshness == 0 {
		cfg.Freshness = DefaultFreshness
	}
	reg := events.NewRegistry()
	if err := errors.Join(domain.RegisterEvents(reg), user.RegisterEvents(reg)); err != nil {
		return nil, err
	}
	return &Keys{cfg: cfg, reg: reg, keys: map[uuid.UUID]*entry{}, byOwner: map[uuid.UUID][]uuid.UUID{},
		accounts: map[uuid.UUID]ServiceAccount{}, disabled: map[uuid.UUID]bool{}}, nil
}

// DigestKey is the key digests are made with (the commands that create
// keys need it).
func (k *Keys) DigestKey() []byte { return k.cfg.DigestKey }

// Watch tells Keys how recent its follower is (the runner's VouchedAt
// for FollowerName). Until it is called, memory is never trusted alone.
func (k *Keys) Watch(vouchedAt func() time.Time) {
	k.mu.Lock()
	k.vouchedAt = vouchedAt
	k.mu.Unlock()
}

// Filter is the follower's filter, from the start of the log.
func (k *Keys) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{
		domain.EventCreated, domain.EventRevoked, user.EventRegistered, user.EventDisabled, user.EventEnabled,
	}}
}

// Apply folds one recorded event (the follower's Handle).
func (k *Keys) Apply(_ context.Context, rec eventstore.RecordedEvent) error {
	e, err := k.reg.Decode(rec.Type, rec.Data)
	if err != nil {
		return fmt.Errorf("apikey: decode %s@%d: %w", rec.Stream, rec.Revision, err)
	}
	k.Observe(e)
	return nil
}

// Observe folds one event. The commands' callers observe what they have
// just appended, so that the caller's next request on this instance sees
// it before the follower delivers it (the follower's delivery then
// changes nothing: every event here is idempotent).
func (k *Keys) Observe(e events.Event) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch e := e.(type) {
	case domain.Created:
		// A key's creation is final: seen again (the follower delivering
		// what a handler observed, a read of the stream), it must not
		// undo a revocation observed in between.
		if _, ok := k.keys[e.KeyID]; ok {
			return
		}
		k.byOwner[e.OwnerID] = append(k.byOwner[e.OwnerID], e.KeyID)
		en := &entry{digest: e.Digest}
		_ = domain.Apply(&en.view, e)
		k.keys[e.KeyID] = en
	case domain.Revoked:
		if en, ok := k.keys[e.KeyID]; ok && en.view.RevokedAt == nil {
			_ = domain.Apply(&en.view, e)
		}
	case user.Registered:
		if e.ServiceAccount {
			k.accounts[e.UserID] = ServiceAccount{ID: e.UserID, Name: e.DisplayName, Roles: slices.Clone(e.Roles), CreatedAt: e.RegisteredAt}
		}
	case user.Disabled:
		k.disabled[e.UserID] = true
	case user.Enabled:
		delete(k.disabled, e.UserID)
	}
}

func (k *Keys) fresh() bool {
	k.mu.RLock()
	vouched := k.vouchedAt
	k.mu.RUnlock()
	if vouched == nil {
		return false
	}
	at := vouched()
	return !at.IsZero() && time.Since(at) <= k.cfg.Freshness
}

// Caller is who a key authenticates: the key and its owner, and the
// key's scopes (the caller holds their intersection with the owner's
// permissions now).
type Caller struct {
	KeyID   uuid.UUID
	OwnerID uuid.UUID
	Scopes  access.Set
	// ExpiresAt is the key's expiry (introspection's exp).
	ExpiresAt time.Time
	CreatedAt time.Time
}

// Authenticate checks a presented key at now: well-formed, known, its
// digest matching, not revoked, not expired, its owner not disabled.
// Every refusal is domain.ErrInvalid; an error reading the log (memory
// not vouched for) is returned as such, for a 503 rather than a guess.
func (k *Keys) Authenticate(ctx context.Context, raw string, now time.Time) (Caller, error) {
	s, err := ParseSecret(raw)
	if err != nil {
		return Caller{}, err
	}
	var en entry
	var disabled, ok bool
	if k.fresh() {
		k.mu.RLock()
		var p *entry
		if p, ok = k.keys[s.ID()]; ok {
			en = *p
			disabled = k.disabled[p.view.OwnerID]
		}
		k.mu.RUnlock()
	} else if en, ok, disabled, err = k.fromLog(ctx, s.ID()); err != nil {
		return Caller{}, err
	}
	// The digest is compared first and always, so that an unknown and a
	// known key take alike.
	if !s.Matches(k.cfg.DigestKey, en.digest) || !ok || disabled || !en.view.ActiveAt(now) {
		return Caller{}, domain.ErrInvalid
	}
	return Caller{KeyID: en.view.ID, OwnerID: en.view.OwnerID, Scopes: access.NewSet(en.view.Permissions...),
		ExpiresAt: en.view.ExpiresAt, CreatedAt: en.view.CreatedAt}, nil
}

// fromLog reads the key's stream and its owner's.
func (k *Keys) fromLog(ctx context.Context, id uuid.UUID) (entry, bool, bool, error) {
	hist, err := k.read(ctx, domain.StreamName(id))
	if err != nil || len(hist) == 0 {
		return entry{}, false, false, err
	}
	var en entry
	for _, e := range hist {
		if c, ok := e.(domain.Created); ok {
			en.digest = c.Digest
		}
		if err := domain.Apply(&en.view, e); err != nil {
			return entry{}, false, false, err
		}
	}
	uh, err := k.read(ctx, user.StreamName(en.view.OwnerID))
	if err != nil {
		return entry{}, false, false, err
	}
	u, err := user.FromHistory(uh)
	if err != nil {
		return entry{}, false, false, fmt.Errorf("apikey: fold the owner's stream: %w", err)
	}
	for _, e := range hist {
		k.Observe(e)
	}
	return en, true, u.Disabled(), nil
}

func (k *Keys) read(ctx context.Context, stream string) ([]events.Event, error) {
	evs, err := eventstore.ReadDecoded(ctx, k.cfg.Store, k.reg, stream)
	if err != nil {
		return nil, fmt.Errorf("apikey: read while the follower is behind: %w", err)
	}
	return evs, nil
}

// Owned lists owner's keys, newest first, revoked and expired ones too
// (they tell what a leaked key could have done, and since when not).
func (k *Keys) Owned(owner uuid.UUID) []domain.View {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]domain.View, 0, len(k.byOwner[owner]))
	for _, id := range k.byOwner[owner] {
		out = append(out, k.keys[id].view)
	}
	slices.SortFunc(out, func(a, b domain.View) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	return out
}

// Active counts owner's keys that authenticate at now.
func (k *Keys) Active(owner uuid.UUID, now time.Time) int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	n := 0
	for _, id := range k.byOwner[owner] {
		if k.keys[id].view.ActiveAt(now) {
			n++
		}
	}
	return n
}

// ServiceAccounts lists the service accounts, oldest first.
func (k *Keys) ServiceAccounts() []ServiceAccount {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]ServiceAccount, 0, len(k.accounts))
	for _, a := range k.accounts {
		a.Roles = slices.Clone(a.Roles)
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b ServiceAccount) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	return out
}

// ServiceAccount returns the service account id, if it is one.
func (k *Keys) ServiceAccount(id uuid.UUID) (ServiceAccount, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	a, ok := k.accounts[id]
	a.Roles = slices.Clone(a.Roles)
	return a, ok
}
