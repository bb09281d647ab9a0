// Package access keeps, in every instance, what each user may do now:
// the role catalog (domain/access.Catalog, the roles stream) and every
// user's grants (domain/user), folded from the log by a local follower
// (FollowerName), so that a role or grant change appended on any
// instance counts on every one within the follower's lag (well under a
// second), and a grant's expiry counts the moment it passes, by the
// clock, without an event.
//
// Permissions are resolved per request from this state, not carried in
// the access token: the token names the user (and the session), and
// Permissions answers what that user holds now (docs/adr/0025). The
// token's roles claim is informational.
//
// It fails closed like the revocation set (httpapi/authn): while the
// follower has not been vouched for within Freshness (starting, retrying,
// the log unreachable), Permissions reads the user's stream and the roles
// stream instead of trusting memory, and returns that read's error
// rather than guess.
package access

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	domain "github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// FollowerName is the local follower's name (readiness, status).
const FollowerName = "access"

// DefaultFreshness: as the revocation set's (authn.DefaultFreshness).
const DefaultFreshness = 750 * time.Millisecond

// Config configures a Live.
type Config struct {
	// Store is read while the follower cannot vouch for memory. Required.
	Store eventstore.Store
	// Now is the clock grants expire by (nil: time.Now).
	Now func() time.Time
	// Freshness: DefaultFreshness when 0.
	Freshness time.Duration
}

// Live is the instance's view of roles and grants. Safe for concurrent
// use.
type Live struct {
	cfg Config
	reg *events.Registry

	mu sync.RWMutex
	// history is the roles stream folded so far; catalog its fold.
	history []events.Event
	nextRev uint64
	catalog *domain.Catalog
	// grants holds the grants of users whose roles differ from the
	// registration default (the user role, without expiry); a user
	// absent from it holds just that.
	grants map[uuid.UUID]map[string]time.Time
	// disabled users hold no permission, whatever their grants (a token
	// the session cutoffs do not cover, a provider's, gets nothing).
	disabled map[uuid.UUID]bool
	// vouchedAt reports when the follower last had every event of its
	// filter committed before it (the runner's VouchedAt); nil: never.
	vouchedAt func() time.Time
}

// New returns the state of an empty log.
func New(cfg Config) (*Live, error) {
	if cfg.Store == nil {
		return nil, errors.New("access: Config.Store is required")
	}
	if cfg.Freshness < 0 {
		return nil, errors.New("access: Config.Freshness must not be negative")
	}
	if cfg.Freshness == 0 {
		cfg.Freshness = DefaultFreshness
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	reg := events.NewRegistry()
	if err := errors.Join(domain.RegisterEvents(reg), user.RegisterEvents(reg)); err != nil {
		return nil, err
	}
	return &Live{cfg: cfg, reg: reg, catalog: domain.Builtin(), grants: map[uuid.UUID]map[string]time.Time{}, disabled: map[uuid.UUID]bool{}}, nil
}

// Watch tells the state how recent its follower is (the runner's
// VouchedAt for FollowerName). Until it is called, memory is never
// trusted alone.
func (l *Live) Watch(vouchedAt func() time.Time) {
	l.mu.Lock()
	l.vouchedAt = vouchedAt
	l.mu.Unlock()
}

// Filter is the follower's filter: role definitions and grants. The
// follower starts at the start of the log (grants are on every user's
// stream).
func (l *Live) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{
		domain.EventRoleCreated, domain.EventRoleChanged, domain.EventRoleDeleted,
		user.EventRegistered, user.EventRoleGranted, user.EventRoleRevoked, user.EventDisabled, user.EventEnabled,
	}}
}

// Apply folds one event (the follower's Handle).
func (l *Live) Apply(_ context.Context, ev eventstore.RecordedEvent) error {
	e, err := l.reg.Decode(ev.Type, ev.Data)
	if err != nil {
		return fmt.Errorf("access: decode %s@%d: %w", ev.Stream, ev.Revision, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e := e.(type) {
	case domain.RoleCreated, domain.RoleChanged, domain.RoleDeleted:
		if ev.Stream != domain.StreamName || ev.Revision < l.nextRev {
			return nil
		}
		c, err := domain.FromHistory(append(l.history, e))
		if err != nil {
			return err
		}
		l.history, l.catalog, l.nextRev = append(l.history, e), c, ev.Revision+1
	case user.Registered:
		if len(e.Roles) == 1 && e.Roles[0] == user.DefaultRole {
			delete(l.grants, e.UserID)
			return nil
		}
		g := map[string]time.Time{}
		for _, r := range e.Roles {
			g[r] = time.Time{}
		}
		l.grants[e.UserID] = g
	case user.RoleGranted:
		g := l.grantsOf(e.UserID)
		var until time.Time
		if e.ExpiresAt != nil {
			until = *e.ExpiresAt
		}
		g[e.Role] = until
		l.settle(e.UserID, g)
	case user.RoleRevoked:
		g := l.grantsOf(e.UserID)
		delete(g, e.Role)
		l.settle(e.UserID, g)
	case user.Disabled:
		l.disabled[e.UserID] = true
	case user.Enabled:
		delete(l.disabled, e.UserID)
	}
	return nil
}

// grantsOf returns a copy of userID's grants; l.mu is held.
func (l *Live) grantsOf(userID uuid.UUID) map[string]time.Time {
	g, ok := l.grants[userID]
	if !ok {
		return map[string]time.Time{user.DefaultRole: {}}
	}
	out := make(map[string]time.Time, len(g))
	for r, t := range g {
		out[r] = t
	}
	return out
}

// settle stores g, or forgets the user when g is the default; l.mu is
// held.
func (l *Live) settle(userID uuid.UUID, g map[string]time.Time) {
	if until, ok := g[user.DefaultRole]; ok && len(g) == 1 && until.IsZero() {
		delete(l.grants, userID)
		return
	}
	l.grants[userID] = g
}

// fresh reports whether memory may answer alone.
func (l *Live) fresh() bool {
	l.mu.RLock()
	vouched := l.vouchedAt
	l.mu.RUnlock()
	if vouched == nil {
		return false
	}
	// The follower's vouching is real time, whatever clock grants
	// expire by.
	at := vouched()
	return !at.IsZero() && time.Since(at) <= l.cfg.Freshness
}

// Permissions is every permission userID holds now: the permissions of
// each role whose grant has not expired, with those of the roles it
// inherits. It is the core question of authorization (an API key's
// caller holds the intersection of this with the key's scopes).
func (l *Live) Permissions(ctx context.Context, userID uuid.UUID) (domain.Set, error) {
	roles, catalog, err := l.Roles(ctx, userID)
	if err != nil {
		return nil, err
	}
	return catalog.Effective(roles), nil
}

// Holds reports whether userID holds need now.
func (l *Live) Holds(ctx context.Context, userID uuid.UUID, need domain.Permission) (bool, error) {
	s, err := l.Permissions(ctx, userID)
	return s.Has(need), err
}

// Roles returns the roles whose grants to userID count now, and the
// catalog that gives them meaning. A disabled user's count for nothing.
func (l *Live) Roles(ctx context.Context, userID uuid.UUID) ([]string, *domain.Catalog, error) {
	now := l.cfg.Now()
	if l.fresh() {
		l.mu.RLock()
		defer l.mu.RUnlock()
		if l.disabled[userID] {
			return nil, l.catalog, nil
		}
		g, ok := l.grants[userID]
		if !ok {
			return []string{user.DefaultRole}, l.catalog, nil
		}
		return activeRoles(g, now), l.catalog, nil
	}
	return l.fromLog(ctx, userID, now)
}

// ActiveRoles returns the roles whose grants to userID count now.
func (l *Live) ActiveRoles(ctx context.Context, userID uuid.UUID) ([]string, error) {
	roles, _, err := l.Roles(ctx, userID)
	return roles, err
}

// Catalog returns the role catalog (from the log when memory cannot be
// vouched for).
func (l *Live) Catalog(ctx context.Context) (*domain.Catalog, error) {
	if l.fresh() {
		l.mu.RLock()
		defer l.mu.RUnlock()
		return l.catalog, nil
	}
	return l.readCatalog(ctx)
}

func activeRoles(g map[string]time.Time, now time.Time) []string {
	out := make([]string, 0, len(g))
	for r, until := range g {
		if (user.Grant{Role: r, ExpiresAt: until}).ActiveAt(now) {
			out = append(out, r)
		}
	}
	return out
}

// fromLog answers from the user's stream and the roles stream.
func (l *Live) fromLog(ctx context.Context, userID uuid.UUID, now time.Time) ([]string, *domain.Catalog, error) {
	hist, err := l.read(ctx, user.StreamName(userID))
	if err != nil {
		return nil, nil, err
	}
	u, err := user.FromHistory(hist)
	if err != nil {
		return nil, nil, fmt.Errorf("access: fold %s: %w", user.StreamName(userID), err)
	}
	c, err := l.readCatalog(ctx)
	if err != nil {
		return nil, nil, err
	}
	if u.Disabled() {
		return nil, c, nil
	}
	return u.ActiveRoles(now), c, nil
}

func (l *Live) readCatalog(ctx context.Context) (*domain.Catalog, error) {
	hist, err := l.read(ctx, domain.StreamName)
	if err != nil {
		return nil, err
	}
	return domain.FromHistory(hist)
}

func (l *Live) read(ctx context.Context, stream string) ([]events.Event, error) {
	evs, err := eventstore.ReadDecoded(ctx, l.cfg.Store, l.reg, stream)
	if err != nil {
		return nil, fmt.Errorf("access: read while the follower is behind: %w", err)
	}
	return evs, nil
}
