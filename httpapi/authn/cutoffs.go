package authn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// CutoffsName is the name of the cutoffs' local follower.
const CutoffsName = "session_cutoffs"

// RoleSource answers which roles count for a user now
// (auth/access.Live), for cutoffs narrowed to a role.
type RoleSource interface {
	ActiveRoles(ctx context.Context, userID uuid.UUID) ([]string, error)
}

// Cutoffs are the bulk revocations (session.RevokedBefore) this instance
// enforces: a session that started before a cutoff that applies to it
// is over, whichever of its tokens is presented. Fed by its local
// follower from the one cutoff stream (read whole at start); it fails
// closed like Revocations: while the follower has not been vouched for
// within Freshness, Ended reads the stream.
type Cutoffs struct {
	store eventstore.Store
	reg   *events.Registry
	roles RoleSource

	mu   sync.RWMutex
	cuts cutoffSet
	next uint64
	// vouchedAt: the runner's VouchedAt of CutoffsName; nil: never.
	vouchedAt func() time.Time
}

// NewCutoffs returns the cutoffs of an empty stream.
func NewCutoffs(store eventstore.Store, roles RoleSource) (*Cutoffs, error) {
	if store == nil || roles == nil {
		return nil, errors.New("authn: NewCutoffs needs a store and a role source")
	}
	reg := events.NewRegistry()
	if err := session.RegisterEvents(reg); err != nil {
		return nil, err
	}
	return &Cutoffs{store: store, reg: reg, roles: roles}, nil
}

// Watch tells the cutoffs how recent their follower is.
func (c *Cutoffs) Watch(vouchedAt func() time.Time) {
	c.mu.Lock()
	c.vouchedAt = vouchedAt
	c.mu.Unlock()
}

// Filter is the follower's filter.
func (c *Cutoffs) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypes: []string{session.EventRevokedBefore}}
}

// Start is the follower's Start: it reads the cutoff stream whole and has
// the follower deliver what comes after the head taken first.
func (c *Cutoffs) Start(ctx context.Context, store eventstore.Store) (eventstore.Position, error) {
	head, err := store.Head(ctx)
	if err != nil {
		return eventstore.Position{}, err
	}
	recs, err := c.read(ctx)
	if err != nil {
		return eventstore.Position{}, err
	}
	for _, r := range recs {
		if err := c.Apply(ctx, r); err != nil {
			return eventstore.Position{}, err
		}
	}
	return head, nil
}

// Apply adds one cutoff (the follower's Handle); one delivered twice is
// applied once, by revision.
func (c *Cutoffs) Apply(_ context.Context, ev eventstore.RecordedEvent) error {
	if ev.Stream != session.CutoffStream {
		return nil
	}
	cut, err := c.decode(ev)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Revision < c.next {
		return nil
	}
	c.cuts.add(cut)
	c.next = ev.Revision + 1
	return nil
}

// cutoffSet keeps, per scope, the latest cutoff only: a cutoff ends the
// sessions started before it, so a later one of the same scope includes
// every earlier one, and a check costs the same however many there were.
type cutoffSet struct {
	all   time.Time
	users map[uuid.UUID]time.Time
	roles map[string]time.Time
}

func (s *cutoffSet) add(c session.RevokedBefore) {
	switch {
	case c.UserID != uuid.Nil:
		if s.users == nil {
			s.users = map[uuid.UUID]time.Time{}
		}
		if c.Before.After(s.users[c.UserID]) {
			s.users[c.UserID] = c.Before
		}
	case c.Role != "":
		if s.roles == nil {
			s.roles = map[string]time.Time{}
		}
		if c.Before.After(s.roles[c.Role]) {
			s.roles[c.Role] = c.Before
		}
	default:
		if c.Before.After(s.all) {
			s.all = c.Before
		}
	}
}

func (c *Cutoffs) decode(ev eventstore.RecordedEvent) (session.RevokedBefore, error) {
	e, err := c.reg.Decode(ev.Type, ev.Data)
	if err != nil {
		return session.RevokedBefore{}, fmt.Errorf("authn: decode %s@%d: %w", ev.Stream, ev.Revision, err)
	}
	cut, ok := e.(session.RevokedBefore)
	if !ok {
		return session.RevokedBefore{}, fmt.Errorf("authn: %s@%d is a %T", ev.Stream, ev.Revision, e)
	}
	return cut, nil
}

func (c *Cutoffs) read(ctx context.Context) ([]eventstore.RecordedEvent, error) {
	recs, err := c.store.ReadStream(ctx, session.CutoffStream, eventstore.ReadStreamOptions{})
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("authn: the cutoffs' follower is behind and %s cannot be read: %w", session.CutoffStream, err)
	}
	return recs, nil
}

// Ended reports whether a cutoff ends userID's session that started at
// started. It decides from memory while the follower is vouched for,
// else from the stream; the user's roles are asked only when a role's
// cutoff could apply.
func (c *Cutoffs) Ended(ctx context.Context, userID uuid.UUID, started time.Time) (bool, error) {
	c.mu.RLock()
	vouched := c.vouchedAt
	c.mu.RUnlock()
	fresh := false
	if vouched != nil {
		at := vouched()
		fresh = !at.IsZero() && time.Since(at) <= DefaultFreshness
	}
	if fresh {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.ended(ctx, &c.cuts, userID, started)
	}
	recs, err := c.read(ctx)
	if err != nil {
		return false, err
	}
	var set cutoffSet
	for _, r := range recs {
		cut, err := c.decode(r)
		if err != nil {
			return false, err
		}
		set.add(cut)
	}
	return c.ended(ctx, &set, userID, started)
}

func (c *Cutoffs) ended(ctx context.Context, s *cutoffSet, userID uuid.UUID, started time.Time) (bool, error) {
	if started.Before(s.all) || started.Before(s.users[userID]) {
		return true, nil
	}
	rolesMayApply := false
	for _, before := range s.roles {
		if started.Before(before) {
			rolesMayApply = true
			break
		}
	}
	if !rolesMayApply {
		return false, nil
	}
	roles, err := c.roles.ActiveRoles(ctx, userID)
	if err != nil {
		return false, err
	}
	for _, r := range roles {
		if started.Before(s.roles[r]) {
			return true, nil
		}
	}
	return false, nil
}
