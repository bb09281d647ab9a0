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
	list []session.RevokedBefore
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
	c.list, c.next = append(c.list, cut), ev.Revision+1
	return nil
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

// current returns the cutoffs to decide with: memory when vouched for,
// else the stream.
func (c *Cutoffs) current(ctx context.Context) ([]session.RevokedBefore, error) {
	c.mu.RLock()
	vouched := c.vouchedAt
	list := c.list
	c.mu.RUnlock()
	if vouched != nil {
		if at := vouched(); !at.IsZero() && time.Since(at) <= DefaultFreshness {
			return list, nil
		}
	}
	recs, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]session.RevokedBefore, 0, len(recs))
	for _, r := range recs {
		cut, err := c.decode(r)
		if err != nil {
			return nil, err
		}
		out = append(out, cut)
	}
	return out, nil
}

// Ended reports whether a cutoff ends userID's session that started at
// started. The user's roles are asked only when a cutoff names a role.
func (c *Cutoffs) Ended(ctx context.Context, userID uuid.UUID, started time.Time) (bool, error) {
	list, err := c.current(ctx)
	if err != nil {
		return false, err
	}
	var roles []string
	rolesRead := false
	for _, cut := range list {
		if cut.Role != "" && !rolesRead && started.Before(cut.Before) {
			if roles, err = c.roles.ActiveRoles(ctx, userID); err != nil {
				return false, err
			}
			rolesRead = true
		}
		if cut.Applies(userID, roles, started) {
			return true, nil
		}
	}
	return false, nil
}
